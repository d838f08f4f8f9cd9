"""BAaV zero-shot protocol: hand-computed rules, and equality with BAaV's own eval.py.

The second half imports BAaV's ``eval.py`` and ``utils/utils.py`` by path from
``../shared/upstream/BAaV`` (commit 149358d) and runs ``eval.py``'s ``main`` on hand-made
masks, with only its model call (``utils.evaluator.evalutate``) replaced by a stub that
returns our predictions.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbridge.metrics.baav import (
    EVAL_PY_PRINT_LABELS,
    PAPER_COLUMNS,
    adaptive_k,
    adaptive_mask,
    adaptive_threshold,
    auc_from_ious,
    auc_thresholds,
    binarize_gt,
    ciou_from_ious,
    fixed_mask,
    prepare_gt,
    resize_gt,
    resize_prediction,
    sample_fbeta,
    sample_iou,
    score_baav,
    score_sample,
    success_rates,
)

F32 = np.float32


# --------------------------------------------------------------------------- GT preparation


def test_gt_resize_to_224_and_binarise_at_128() -> None:
    gt = np.zeros((10, 20), np.uint8)
    gt[:, 10:] = 255
    out = resize_gt(gt)
    assert out.shape == (224, 224) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(gt).resize((224, 224), Image.Resampling.BICUBIC))
    assert np.array_equal(out, expected)  # PIL's default filter for "L" is bicubic
    assert binarize_gt(np.array([[0, 127, 128, 255]], np.uint8)).tolist() == [
        [False, False, True, True]
    ]
    mask = prepare_gt(gt)
    assert mask.dtype == bool and mask[:, :100].sum() == 0 and mask[:, 124:].all()
    # bool masks are read as 0/255 grey; a 224 x 224 GT is left as it is
    same = np.zeros((224, 224), bool)
    same[5:9, 5:9] = True
    assert np.array_equal(prepare_gt(same), same)
    with pytest.raises(ValueError, match="2-D"):
        resize_gt(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="8-bit"):
        resize_gt(np.zeros((4, 4), np.float32))


def test_resize_prediction_matches_torch_bilinear() -> None:
    import torch

    rng = np.random.default_rng(3)
    for shape in ((416, 416), (37, 61), (224, 224), (500, 300)):
        pred = rng.random(shape, dtype=np.float32)
        ours = resize_prediction(pred)
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(pred)[None, None],
            size=(224, 224),
            mode="bilinear",
            align_corners=False,
        )[0, 0].numpy()
        assert ours.shape == (224, 224)
        # equal up to float32 rounding of the weights (torch's own CPU and CUDA kernels
        # differ at that level too)
        np.testing.assert_allclose(ours, ref, atol=1e-4)


# --------------------------------------------------------------------------- one sample

# 2 x 3 hand case. GT G = [[1, 1, 0], [0, 0, 0]] (2 pixels).
GT = np.array([[1, 1, 0], [0, 0, 0]], bool)
PRED = np.array([[0.9, 0.4, 0.6], [0.5, 0.1, 0.0]], F32)
# fixed (> 0.5): {0.9, 0.6} -> M = [[1, 0, 1], [0, 0, 0]]; 0.5 itself is not > 0.5
#   I = 1, FP = 1, FN = 1: IoU = 1 / (2 + 1) = 1/3; P = 1/2, R = 1/2 -> F = 1/2
# adaptive: k = 2, sorted = [0, .1, .4, .5, .6, .9], thr = sorted[6 - 2] = 0.6, M = pred > 0.6
#   = {0.9} only (strict: the k-th value itself is dropped): I = 1, FP = 0
#   IoU = 1 / (2 + 0) = 1/2; P = 1, R = 1/2 -> F = 1.3 * 0.5 / (0.3 + 0.5) = 0.8125


def test_fixed_mask_is_strict() -> None:
    assert fixed_mask(PRED).tolist() == [[True, False, True], [False, False, False]]
    assert fixed_mask(PRED, 0.35).sum() == 4


def test_adaptive_threshold_is_kth_largest_and_strict() -> None:
    assert adaptive_k(GT) == 2
    assert adaptive_threshold(PRED, GT) == F32(0.6)
    assert adaptive_mask(PRED, GT).tolist() == [[True, False, False], [False, False, False]]
    empty = np.zeros_like(GT)
    assert adaptive_k(empty) == 3  # HW // 2
    assert adaptive_threshold(PRED, empty) == F32(0.5)  # sorted[6 - 3]
    assert adaptive_mask(PRED, empty).sum() == 2  # 0.9, 0.6
    # ties: a binary prediction equal to the GT selects nothing (threshold 1, strict >)
    assert adaptive_mask(GT.astype(F32), GT).sum() == 0


def test_iou_and_fbeta_by_hand() -> None:
    fixed = fixed_mask(PRED)
    adaptive = adaptive_mask(PRED, GT)
    assert sample_iou(fixed, GT) == pytest.approx(1 / 3)
    assert sample_fbeta(fixed, GT) == pytest.approx(0.5)
    assert sample_iou(adaptive, GT) == pytest.approx(0.5)
    assert sample_fbeta(adaptive, GT) == pytest.approx(1.3 * 0.5 / 0.8)
    # |G| + |M \ G| is the denominator: FN pixels count through |G|
    assert sample_iou(np.zeros_like(GT), GT) == 0.0
    assert sample_fbeta(np.zeros_like(GT), GT) == 0.0
    # empty GT: IoU 0/0 -> NaN when the mask is empty, 0 otherwise; F always 0
    empty = np.zeros_like(GT)
    assert math.isnan(sample_iou(empty, empty))
    assert sample_iou(fixed, empty) == 0.0
    assert sample_fbeta(empty, empty) == 0.0 and sample_fbeta(fixed, empty) == 0.0


def test_score_sample_empty_gt_all_zero_prediction() -> None:
    """Empty GT, all-zero prediction: fixed IoU NaN -> 0, adaptive IoU stays NaN, F = 0."""
    row = score_sample(np.zeros((4, 4), F32), np.zeros((4, 4), bool))
    assert row.iou_fixed == 0.0
    assert math.isnan(row.iou_adaptive)  # threshold sorted[16 - 8] = 0, nothing > 0
    assert row.fbeta_fixed == 0.0 and row.fbeta_adaptive == 0.0
    assert row.gt_pixels == 0 and row.adaptive_threshold == 0.0


# --------------------------------------------------------------------------- sample lists


def test_ciou_and_auc_by_hand() -> None:
    ious = [1.0, 0.5, 0.25, 0.0]
    assert ciou_from_ious(ious) == 0.5  # 1.0 and 0.5 (>= is inclusive)
    thresholds = auc_thresholds()
    assert len(thresholds) == 21 and thresholds[0] == 0.0 and thresholds[-1] == 1.0
    assert thresholds[3] == 0.05 * 3  # 0.15000000000000002, as eval.py builds it
    rates = success_rates(ious)
    assert rates[0] == 1.0 and rates[5] == 0.75 and rates[6] == 0.5 and rates[20] == 0.25
    # area = 0.05 * sum of trapezoids; rates: t<=.25 -> .75 (t=0: 1), .25<t<=.5 -> .5, then .25
    expected = 0.05 * ((1 + 0.75) / 2 + 4 * 0.75 + (0.75 + 0.5) / 2 + 4 * 0.5 + (0.5 + 0.25) / 2)
    expected += 0.05 * 9 * 0.25
    assert auc_from_ious(ious) == pytest.approx(expected)
    # NaN fails every >= test: it counts as a miss, also at t = 0
    assert ciou_from_ious([1.0, math.nan]) == 0.5
    assert success_rates([1.0, math.nan])[0] == 0.5


def test_score_baav_hand_computed_with_nan() -> None:
    empty = np.zeros((2, 3), bool)
    result = score_baav([PRED, np.zeros((2, 3), F32)], [GT, empty])
    # sample 1: hand case above; sample 2: empty GT, all-zero prediction
    assert result["mean_iou_fixed"] == pytest.approx((1 / 3 + 0.0) / 2)
    assert result["mean_fbeta_fixed"] == pytest.approx((0.5 + 0.0) / 2)
    assert result["mean_fbeta_adaptive"] == pytest.approx((0.8125 + 0.0) / 2)
    assert math.isnan(result["mean_iou_adaptive"])  # eval.py's np.mean keeps the NaN
    assert result["n_adaptive_iou_nan"] == 1 and result["n_empty_gt"] == 1
    assert result["ciou_adaptive"] == 0.5  # 0.5 passes, NaN fails
    assert result["ciou_fixed"] == 0.0  # 1/3 and 0
    assert result["n_samples"] == 2 and result["fixed_threshold"] == 0.5
    # short keys = paper columns
    for column, key in PAPER_COLUMNS.items():
        short = {"cIoU": "ciou", "AUC": "auc", "mIoU": "miou", "Fscore": "fscore"}.get(
            column, column.lower()
        )
        assert result[short] == result[key] or (
            math.isnan(result[short]) and math.isnan(result[key])
        )
    assert PAPER_COLUMNS["mIoU"] == EVAL_PY_PRINT_LABELS["Jaccard"] == "mean_iou_adaptive"
    assert PAPER_COLUMNS["J"] == EVAL_PY_PRINT_LABELS["mIoU_adap"] == "mean_iou_fixed"


def test_score_baav_fixed_threshold_parameter_and_errors() -> None:
    result = score_baav([PRED], [GT], fixed_threshold=0.35)
    # > 0.35: {0.9, 0.4, 0.6, 0.5}: I = 2, FP = 2 -> IoU 2 / 4
    assert result["mean_iou_fixed"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="fixed_threshold"):
        score_baav([PRED], [GT], fixed_threshold=1.5)
    with pytest.raises(ValueError, match="no samples"):
        score_baav([], [])
    with pytest.raises(ValueError, match="1 predictions but 2"):
        score_baav([PRED], [GT, GT])
    with pytest.raises(ValueError, match="sample 0: prediction"):
        score_baav([PRED[:, :2]], [GT])
    with pytest.raises(ValueError, match="binary"):
        score_baav([PRED], [GT.astype(np.uint8) * 255])
    with pytest.raises(ValueError, match="NaN"):
        score_baav([np.full((2, 3), np.nan, F32)], [GT])
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        score_baav([PRED * 255], [GT])


# --------------------------------------------------------------------------- BAaV's eval.py


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _EvalPy:
    """BAaV's eval.py loaded by path; its model call answers from a dict of predictions."""

    def __init__(self, baav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # What eval.py and utils/utils.py import (dev dependencies): missing -> the test fails.
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
        import tqdm  # noqa: F401

        monkeypatch.setenv("MPLBACKEND", "Agg")
        self.preds: dict[str, np.ndarray] = {}
        self.evaluators: list[object] = []
        package = types.ModuleType("utils")
        package.__path__ = [str(baav / "utils")]  # BAaV's utils/ has no __init__.py
        monkeypatch.setitem(sys.modules, "utils", package)
        utils = _load("utils.utils", baav / "utils" / "utils.py")
        monkeypatch.setitem(sys.modules, "utils.utils", utils)
        package.utils = utils  # type: ignore[attr-defined]
        recorded = self.evaluators
        original_init = utils.Evaluator_iiou.__init__

        def recording_init(evaluator: object) -> None:
            original_init(evaluator)
            recorded.append(evaluator)  # the instance eval.py's main fills

        monkeypatch.setattr(utils.Evaluator_iiou, "__init__", recording_init)
        stub = types.ModuleType("utils.evaluator")
        stub.evalutate = self._evalutate  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "utils.evaluator", stub)
        package.evaluator = stub  # type: ignore[attr-defined]
        self.module = _load("baav_eval", baav / "eval.py")

    def _evalutate(self, args: object, img_path: str, wav_path: str) -> object:
        import torch

        return torch.from_numpy(self.preds[Path(img_path).stem])[None, None]

    def run(self, root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[object, dict[str, str]]:
        self.module.main(argparse.Namespace(test_data_path=str(root), visualize=False))
        printed = dict(re.findall(r"^(.+?) : (\S+)$", capsys.readouterr().out, flags=re.M))
        return self.evaluators[-1], printed


def _dataset(
    root: Path, rng: np.random.Generator, n: int, empty_every: int
) -> tuple[dict[str, np.ndarray], list[Path]]:
    """n samples in eval.py's layout (img/, wav/, gt_seg/); GT PNGs at assorted sizes."""
    for sub in ("img", "wav", "gt_seg"):
        (root / sub).mkdir(parents=True)
    preds: dict[str, np.ndarray] = {}
    gt_paths: list[Path] = []
    for i in range(n):
        stem = f"s{i:03d}"
        (root / "img" / f"{stem}.jpg").write_bytes(b"")  # eval.py only lists the names
        h, w = [(224, 224), (97, 131), (300, 260), (50, 50)][i % 4]
        gt = np.zeros((h, w), np.uint8)
        if empty_every and i % empty_every == 0:
            pred = np.zeros((224, 224), F32) if i % 2 == 0 else rng.random((224, 224), F32)
        else:
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            gt[y0 : y0 + rng.integers(3, h // 2), x0 : x0 + rng.integers(3, w // 2)] = 255
            pred = rng.random((224, 224), dtype=F32)
            if i % 3 == 0:
                pred = np.round(pred * 255) / F32(255)  # 8-bit ties
            if i % 5 == 0:
                pred = (pred > 0.7).astype(F32)  # a binary map: massive ties
        preds[stem] = pred.astype(F32)
        path = root / "gt_seg" / f"{stem}.png"
        Image.fromarray(gt, mode="L").save(path)
        gt_paths.append(path)
    return preds, gt_paths


def _ours(preds: dict[str, np.ndarray], gt_paths: list[Path]) -> dict:
    gts = [prepare_gt(np.asarray(Image.open(p))) for p in gt_paths]
    return score_baav([preds[p.stem] for p in gt_paths], gts)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # eval.py's iIoU lists
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("empty_every", [0, 4])
def test_equals_baav_eval_py(
    baav_upstream: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    empty_every: int,
) -> None:
    rng = np.random.default_rng(13 + empty_every)
    eval_py = _EvalPy(baav_upstream, monkeypatch)
    preds, gt_paths = _dataset(tmp_path, rng, 24, empty_every)
    eval_py.preds = preds
    with np.errstate(invalid="ignore", divide="ignore"):
        evaluator, printed = eval_py.run(tmp_path, capsys)
        ours = _ours(preds, gt_paths)
        their_ciou = evaluator.finalize_cIoU()  # type: ignore[attr-defined]
        their_auc = evaluator.finalize_AUC()  # type: ignore[attr-defined]
    rows = [score_sample(preds[p.stem], prepare_gt(np.asarray(Image.open(p)))) for p in gt_paths]
    # per sample, bit for bit (NaN where theirs is NaN)
    np.testing.assert_array_equal([r.iou_fixed for r in rows], evaluator.ciou)  # type: ignore[attr-defined]
    np.testing.assert_array_equal([r.iou_adaptive for r in rows], evaluator.ciou_adap)  # type: ignore[attr-defined]
    np.testing.assert_array_equal([r.fbeta_fixed for r in rows], evaluator.fscore)  # type: ignore[attr-defined]
    np.testing.assert_array_equal([r.fbeta_adaptive for r in rows], evaluator.fscore_adap)  # type: ignore[attr-defined]
    # the finalize_* values, exactly
    assert ours["ciou_adaptive"] == their_ciou[1] and ours["ciou_fixed"] == their_ciou[0]
    assert ours["auc_adaptive"] == their_auc[1] and ours["auc_fixed"] == their_auc[0]
    n_nan = int(np.isnan(np.asarray(evaluator.ciou_adap, float)).sum())  # type: ignore[attr-defined]
    assert ours["n_adaptive_iou_nan"] == n_nan
    assert (n_nan > 0) == bool(empty_every)
    # every printed line equals our quantity under its honest name, at the printed precision
    assert set(printed) == set(EVAL_PY_PRINT_LABELS)
    for label, key in EVAL_PY_PRINT_LABELS.items():
        value = ours[key]
        if label in ("CIoU_adap", "AUC_adap"):
            assert printed[label] == f"{value * 100:.1f}", label
        else:
            assert printed[label] == f"{value:.3f}", label
    if empty_every:
        assert printed["Jaccard"] == "nan" and math.isnan(ours["mean_iou_adaptive"])
