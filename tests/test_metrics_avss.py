"""AVSS semantic metrics against a hand-computed 3-class case."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from avsbridge.metrics.avss import score_avss

# Frame 1: GT (0, 1, 1, 2), pred (0, 1, 2, 2)
#   class 0: inter 1, pred 1, GT 1 -> IoU 1;             P 1,   R 1   -> F 1
#   class 1: inter 1, pred 1, GT 2 -> union 2, IoU 1/2;  P 1,   R 1/2 -> F 1.3*0.5/0.8  = 13/16
#   class 2: inter 1, pred 2, GT 1 -> union 2, IoU 1/2;  P 1/2, R 1   -> F 1.3*0.5/1.15 = 13/23
# Frame 2: GT (0, 0, 0, 0), pred (0, 0, 0, 1)
#   class 0: inter 3, pred 3, GT 4 -> IoU 3/4;  P 1, R 3/4 -> F 1.3*0.75/1.05 = 13/14
#   class 1: inter 0, union 1      -> IoU 0, F 0 (the class occurs, so the frame counts)
#   class 2: absent from both      -> not counted
# Official per-class score = mean over the frames where the class occurs:
#   IoU: c0 (1 + 3/4)/2 = 7/8, c1 (1/2 + 0)/2 = 1/4, c2 1/2
#   F:   c0 (1 + 13/14)/2 = 27/28, c1 (13/16)/2 = 13/32, c2 13/23
GT = [np.array([[0, 1, 1, 2]]), np.array([[0, 0, 0, 0]])]
PRED = [np.array([[0, 1, 2, 2]]), np.array([[0, 0, 0, 1]])]


def test_three_classes_hand_computed() -> None:
    result = score_avss(PRED, GT, n_classes=3)
    assert result["miou"] == pytest.approx((7 / 8 + 1 / 4 + 1 / 2) / 3)  # 0.541667
    assert result["fscore"] == pytest.approx((27 / 28 + 13 / 32 + 13 / 23) / 3)
    assert result["per_class_iou"] == pytest.approx([7 / 8, 1 / 4, 1 / 2])
    assert result["per_class_fscore"] == pytest.approx([27 / 28, 13 / 32, 13 / 23])
    # without background (class 0): (1/4 + 1/2) / 2
    assert result["miou_no_bg"] == pytest.approx(3 / 8)
    # pooled intersection/union: c0 (1+3)/(1+4) = 4/5, c1 1/(2+1) = 1/3, c2 1/2
    assert result["miou_pooled"] == pytest.approx((4 / 5 + 1 / 3 + 1 / 2) / 3)
    assert result["n_frames"] == 2
    assert result["n_classes_present"] == 3
    assert result["fscore_variant"] == "avss-argmax"


def test_absent_classes_count_only_in_all_class_mean() -> None:
    # A 4th class that never occurs: skipped by miou, 0 in the official all-class mean.
    result = score_avss(PRED, GT, n_classes=4)
    assert result["miou"] == pytest.approx(1.625 / 3)
    assert result["miou_all_classes"] == pytest.approx(1.625 / 4)
    assert result["fscore_all_classes"] == pytest.approx((27 / 28 + 13 / 32 + 13 / 23) / 4)
    assert result["per_class_iou"][3] is None


def test_perfect_labels_score_one() -> None:
    rng = np.random.default_rng(1)
    labels = [rng.integers(0, 71, (6, 5)) for _ in range(3)]
    result = score_avss(labels, labels)
    assert result["miou"] == pytest.approx(1.0)
    assert result["fscore"] == pytest.approx(1.0)


def test_bad_labels_raise() -> None:
    with pytest.raises(ValueError, match="outside 0..2"):
        score_avss([np.array([[0, 3]])], [np.array([[0, 1]])], n_classes=3)
    with pytest.raises(ValueError, match="integers"):
        score_avss([np.array([[0.5, 1.0]])], [np.array([[0, 1]])], n_classes=3)
    with pytest.raises(ValueError, match="2-D label maps"):
        score_avss([np.zeros((2, 2), int)], [np.zeros((2, 3), int)], n_classes=3)
    with pytest.raises(ValueError, match="no frames"):
        score_avss([], [], n_classes=3)


def test_both_official_numbers_have_explicit_names() -> None:
    from avsbridge.metrics.avss import OFFICIAL_AVSS_NUMBERS, PAPER_AVSS_NUMBER, paper_avss_keys

    result = score_avss(PRED, GT, n_classes=4)
    assert result["miou_present_classes"] == result["miou"] == pytest.approx(1.625 / 3)
    assert result["fscore_present_classes"] == result["fscore"]
    for miou_key, f_key in OFFICIAL_AVSS_NUMBERS.values():
        assert miou_key in result and f_key in result
    assert set(PAPER_AVSS_NUMBER) == {"ssp", "teso"}
    assert paper_avss_keys("ssp") == ("miou_all_classes", "fscore_all_classes")
    assert paper_avss_keys("teso") == ("miou_all_classes", "fscore_all_classes")
    with pytest.raises(ValueError, match="no AVSS number recorded"):
        paper_avss_keys("openavs")


# --------------------------------------------------------------------------- official code


def _official_metrics(avss_dir: Path) -> types.ModuleType:
    """AVSBench's avs_scripts/avss/utils/compute_color_metrics.py, imported by path."""
    # compute_color_metrics.py imports torch, cv2, pandas, torchvision, tqdm (all pinned):
    # a missing one fails the test rather than skipping it.
    path = avss_dir / "utils" / "compute_color_metrics.py"
    spec = importlib.util.spec_from_file_location("avsbench_avss_color_metrics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _official_two_numbers(
    official: types.ModuleType, batches: list[tuple[np.ndarray, np.ndarray]], n_classes: int
) -> dict[str, float]:
    """Run calc_color_miou_fscore per batch and reduce the sums as avss/test.py does.

    test.py's loop cannot be imported (it is the ``__main__`` block); these lines are its
    reduction: per-batch print over ``cls_pc != 0`` and the final line over all classes.
    """
    import torch

    miou_pc = torch.zeros(n_classes)
    fs_pc = torch.zeros(n_classes)
    cls_pc = torch.zeros(n_classes)
    for logits, labels in batches:
        _miou, _fs, _cls, _ = official.calc_color_miou_fscore(
            torch.from_numpy(logits), torch.from_numpy(labels)
        )
        miou_pc += _miou
        cls_pc += _cls
        fs_pc += _fs
    batch_iou = miou_pc / cls_pc
    batch_iou[torch.isnan(batch_iou)] = 0
    batch_iou = torch.sum(batch_iou) / torch.sum(cls_pc != 0)
    batch_f = fs_pc / cls_pc
    batch_f[torch.isnan(batch_f)] = 0
    batch_f = torch.sum(batch_f) / torch.sum(cls_pc != 0)
    final_iou = miou_pc / cls_pc
    final_iou[torch.isnan(final_iou)] = 0
    final_f = fs_pc / cls_pc
    final_f[torch.isnan(final_f)] = 0
    return {
        "per_batch_print_miou": float(batch_iou),
        "per_batch_print_f": float(batch_f),
        "final_log_line_miou": float(torch.mean(final_iou)),
        "final_log_line_f": float(torch.mean(final_f)),
        "n_classes_present": int(torch.sum(cls_pc != 0)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_official_avss_code(avsbench_upstream: Path, seed: int) -> None:
    from avsbridge.metrics.avss import OFFICIAL_AVSS_NUMBERS

    official = _official_metrics(avsbench_upstream)
    rng = np.random.default_rng(seed)
    n_classes = 71
    # Few classes per run (so many of the 71 never occur and the two numbers differ),
    # 3 batches of 10 frames (the official T = 10), 6 x 7 maps.
    used = rng.choice(n_classes, size=6, replace=False)
    batches, preds, gts = [], [], []
    for _ in range(3):
        labels = rng.choice(used, size=(10, 6, 7)).astype(np.int64)
        labels[rng.random(labels.shape) < 0.3] = 0  # plenty of background
        logits = rng.normal(size=(10, n_classes, 6, 7)).astype(np.float32)
        # make the argmax mostly agree with the GT, sometimes pick another used class
        boost = np.where(rng.random(labels.shape) < 0.6, labels, rng.choice(used, labels.shape))
        np.put_along_axis(logits, boost[:, None], 10.0, axis=1)
        batches.append((logits, labels))
        preds.extend(np.argmax(logits, axis=1))
        gts.extend(labels)
    theirs = _official_two_numbers(official, batches, n_classes)
    ours = score_avss(preds, gts, n_classes=n_classes)
    (batch_miou, batch_f), (final_miou, final_f) = (
        OFFICIAL_AVSS_NUMBERS["per_batch_print"],
        OFFICIAL_AVSS_NUMBERS["final_log_line"],
    )
    # float32 sums in the official code vs float64 here
    assert ours[batch_miou] == pytest.approx(theirs["per_batch_print_miou"], abs=1e-6)
    assert ours[batch_f] == pytest.approx(theirs["per_batch_print_f"], abs=1e-6)
    assert ours[final_miou] == pytest.approx(theirs["final_log_line_miou"], abs=1e-6)
    assert ours[final_f] == pytest.approx(theirs["final_log_line_f"], abs=1e-6)
    assert ours["n_classes_present"] == theirs["n_classes_present"] < n_classes
    assert ours[final_miou] < ours[batch_miou]  # the inputs do tell the two apart


def test_real_test_split_lacks_four_categories(avsbench_meta: Path) -> None:
    """Why the two official numbers differ on the real AVSS test split (see avss.py)."""
    import csv

    with (avsbench_meta / "v3" / "metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    sounding: dict[str, set[str]] = {}
    for row in rows:
        sounding.setdefault(row["split"], set()).update(
            name for name in row["a_obj"].split("_") if name.strip()
        )
    everywhere = set().union(*sounding.values())
    assert {"axe", "clipper", "harmonica", "utv"} <= everywhere - sounding["test"]
