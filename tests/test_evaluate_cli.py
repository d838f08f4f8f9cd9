"""``avsbridge evaluate`` end to end on small PNG trees, including every error case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from avsbridge.io import ArtifactError, write_png, write_prob_png
from avsbridge.metrics.evaluate import (
    avss_palette,
    evaluate_command,
    evaluate_dirs,
    read_label_map,
    score_frames,
)

runner = CliRunner()


def _app() -> typer.Typer:
    """The command as avsbridge.cli registers it (a callback keeps it a sub-command)."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    app.command("evaluate")(evaluate_command)
    return app


def _mask_png(path: Path, values: list[int]) -> None:
    write_png(path, np.array([values], dtype=np.uint8) * 255)


# The five frames of test_metrics_avsbench as 8-bit PNGs (values k/255 on the same sides of
# every threshold): A (204, 51)/255 GT (1, 0); B (26, 179)/255 GT (1, 0); E (51, 77)/255 GT empty.
# Sorted relative paths give the order A, A, B, B, E.
TREE = {
    "clip_a/1.png": ([204, 51], [1, 0]),
    "clip_a/2.png": ([204, 51], [1, 0]),
    "clip_b/1.png": ([26, 179], [1, 0]),
    "clip_b/2.png": ([26, 179], [1, 0]),
    "clip_e/1.png": ([51, 77], [0, 0]),
}


@pytest.fixture()
def trees(tmp_path: Path) -> tuple[Path, Path]:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    for rel, (pred_values, gt_values) in TREE.items():
        write_png(pred_dir / rel, np.array([pred_values], dtype=np.uint8))
        _mask_png(gt_dir / rel, gt_values)
    return pred_dir, gt_dir


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(_app(), ["evaluate", *args])
    return result.exit_code, result.output


def test_avsbench_official_json(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    code, out = _run(
        "--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", "avsbench", "--json"
    )
    assert code == 0, out
    scores = json.loads(out)
    # Hand values from test_metrics_avsbench: batch 4 -> mIoU 0.75, F 13/46.
    assert scores["protocol"] == "avsbench"
    assert scores["miou"] == pytest.approx(0.75)
    assert scores["fscore"] == pytest.approx(13 / 46)
    assert scores["fscore_variant"] == "official"
    assert scores["batch_size"] == 4
    assert scores["n_frames"] == 5


def test_batch_size_option_and_frame_protocol(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    code, out = _run(
        "--pred",
        str(pred_dir),
        "--gt",
        str(gt_dir),
        "--protocol",
        "avsbench",
        "--batch-size",
        "1",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["fscore"] == pytest.approx(72 / 115)
    code, out = _run(
        "--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", "avsbench-frame", "--json"
    )
    assert code == 0, out
    scores = json.loads(out)
    assert scores["fscore"] == pytest.approx(13 / 23)
    assert scores["miou"] == pytest.approx(0.6)
    assert scores["fscore_variant"] == "pooled" and scores["batch_size"] is None


def test_zeroshot_protocol_scores_in_unit_range(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    code, out = _run(
        "--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", "zeroshot-sslalign", "--json"
    )
    assert code == 0, out
    scores = json.loads(out)
    for key in ("ciou", "auc", "miou", "fscore", "j", "f"):
        assert 0.0 <= scores[key] <= 1.0
    # A: GT 1 pixel -> threshold sorted(51, 204)[1] = 204, nothing strictly above -> IoU 0; same
    # for B; E: empty GT -> IoU 0. So every adaptive IoU is 0.
    assert scores["ciou"] == 0.0 and scores["miou"] == 0.0
    assert scores["n_frames"] == 5


def test_plain_output_is_readable(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    code, out = _run("--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", "avsbench")
    assert code == 0, out
    assert "miou: 0.7500" in out and "fscore_variant: official" in out


def test_avss_protocol_with_palette_and_rgb_labels(tmp_path: Path) -> None:
    palette = avss_palette()
    gt_labels = np.array([[0, 1, 1, 2]], dtype=np.uint8)
    pred_labels = np.array([[0, 1, 2, 2]], dtype=np.uint8)
    gt_img = Image.fromarray(gt_labels, mode="P")
    gt_img.putpalette(palette.ravel().tolist())
    (tmp_path / "gt" / "v").mkdir(parents=True)
    gt_img.save(tmp_path / "gt" / "v" / "0.png")
    write_png(tmp_path / "pred" / "v" / "0.png", palette[pred_labels])  # labels_rgb style colours
    assert read_label_map(tmp_path / "pred" / "v" / "0.png").tolist() == pred_labels.tolist()
    code, out = _run(
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        str(tmp_path / "gt"),
        "--protocol",
        "avss",
        "--json",
    )
    assert code == 0, out
    scores = json.loads(out)
    # Frame 1 of test_metrics_avss alone: IoU c0 1, c1 1/2, c2 1/2.
    assert scores["miou"] == pytest.approx(2 / 3)
    assert scores["n_classes_present"] == 3 and scores["batch_size"] is None


def test_avss_off_palette_colour_is_an_error(tmp_path: Path) -> None:
    colours = np.zeros((1, 2, 3), dtype=np.uint8)
    colours[0, 1] = (1, 2, 3)
    write_png(tmp_path / "gt" / "0.png", colours)
    write_png(tmp_path / "pred" / "0.png", np.zeros((1, 2, 3), dtype=np.uint8))
    code, out = _run(
        "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--protocol", "avss"
    )
    assert code == 1
    assert "0.png" in out and "outside the 71-class AVSS palette" in out


def _expect_error(
    pred_dir: Path, gt_dir: Path, *fragments: str, protocol: str = "avsbench"
) -> None:
    code, out = _run("--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", protocol, "--json")
    assert code == 1, out
    for fragment in fragments:
        assert fragment in out


def test_missing_prediction(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    (pred_dir / "clip_b" / "2.png").unlink()
    _expect_error(pred_dir, gt_dir, "clip_b/2.png", "missing prediction for GT")


def test_extra_prediction(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    write_prob_png(pred_dir / "clip_z" / "9.png", np.zeros((1, 2)))
    _expect_error(pred_dir, gt_dir, "clip_z/9.png", "without a GT")


def test_size_mismatch(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    write_prob_png(pred_dir / "clip_a" / "2.png", np.zeros((2, 2)))
    _expect_error(pred_dir, gt_dir, "clip_a/2.png", "size 2x2 differs from GT")


def test_unreadable_png(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    (gt_dir / "clip_b" / "1.png").write_bytes(b"not a png")
    _expect_error(pred_dir, gt_dir, "clip_b/1.png", "unreadable image")


def test_missing_folder(tmp_path: Path, trees: tuple[Path, Path]) -> None:
    _, gt_dir = trees
    _expect_error(tmp_path / "nope", gt_dir, "nope", "prediction folder is missing")


def test_empty_gt_folder(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    _expect_error(tmp_path / "pred", tmp_path / "gt", "no PNG files")


def test_colour_gt_for_binary_protocol(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    colour = np.zeros((1, 2, 3), dtype=np.uint8)
    colour[0, 0] = (128, 0, 0)
    write_png(gt_dir / "clip_a" / "1.png", colour)
    _expect_error(pred_dir, gt_dir, "clip_a/1.png", "mode RGB", "--protocol avss")


def test_unknown_protocol(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    code, out = _run("--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", "coco")
    assert code == 2
    assert "--protocol" in out


def test_evaluate_dirs_and_score_frames_agree(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    from_files = evaluate_dirs(pred_dir, gt_dir, "avsbench", batch_size=2)
    frames = [
        (np.array([p], np.float32) / 255.0, np.array([g], bool))
        for p, g in (TREE[k] for k in sorted(TREE))
    ]
    assert score_frames(frames, "avsbench", batch_size=2) == from_files
    assert from_files["fscore"] == pytest.approx(12 / 23)
    with pytest.raises(ValueError, match="unknown protocol"):
        score_frames(frames, "coco")
    with pytest.raises(ArtifactError):
        evaluate_dirs(pred_dir / "missing", gt_dir, "avsbench")


def test_registered_in_avsbridge_cli() -> None:
    from avsbridge.cli import app  # a broken CLI import fails here, never skips

    result = runner.invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0 and "--protocol" in result.output


def test_zeroshot_exact_topk_rule_option(tmp_path: Path) -> None:
    # GT used as its own prediction: official top-k selects nothing on a binary map, exact selects
    # the GT pixels.
    for name, values in (("0.png", [1, 0, 1, 0]), ("1.png", [0, 1, 1, 1])):
        _mask_png(tmp_path / "gt" / name, values)
        _mask_png(tmp_path / "pred" / name, values)
    args = (
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        str(tmp_path / "gt"),
        "--protocol",
        "zeroshot-sslalign",
        "--json",
    )
    code, out = _run(*args)
    assert code == 0, out
    assert json.loads(out)["miou"] == 0.0
    code, out = _run(*args, "--topk-rule", "exact")
    assert code == 0, out
    scores = json.loads(out)
    assert scores["miou"] == 1.0 and scores["ciou"] == 1.0 and scores["topk_rule"] == "exact"
    code, out = _run(*args, "--topk-rule", "median")
    assert code == 2 and "--topk-rule" in out


# --------------------------------------------------------------------------- zeroshot-baav


def test_zeroshot_baav_protocol_reads_raw_grey_gt(tmp_path: Path) -> None:
    """GT PNGs at their own size are resized to 224 and binarised at 128, as BAaV's eval.py."""
    from avsbridge.metrics.baav import prepare_gt, score_baav

    rng = np.random.default_rng(5)
    preds, gts = [], []
    for i in range(3):
        gt = np.zeros((60, 80), np.uint8)
        gt[10 + i : 40, 20 : 50 + i] = 200  # grey, not 255: the >= 128 rule after resizing
        write_png(tmp_path / "gt" / f"{i}.png", gt)
        pred = rng.integers(0, 256, (224, 224), dtype=np.uint8)
        write_png(tmp_path / "pred" / f"{i}.png", pred)
        preds.append(pred.astype(np.float32) / 255.0)
        gts.append(prepare_gt(gt))
    args = ("--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"))
    code, out = _run(*args, "--protocol", "zeroshot-baav", "--json")
    assert code == 0, out
    scores = json.loads(out)
    expected = score_baav(preds, gts)
    assert scores["protocol"] == "zeroshot-baav"
    for key in ("ciou", "auc", "miou", "fscore", "j", "f", "mean_iou_fixed", "n_samples"):
        assert scores[key] == pytest.approx(expected[key]), key
    assert scores["n_adaptive_iou_nan"] == 0 and scores["fixed_threshold"] == 0.5
    code, out = _run(*args, "--protocol", "zeroshot-baav", "--fixed-threshold", "0.35", "--json")
    assert code == 0, out
    assert json.loads(out)["j"] == pytest.approx(score_baav(preds, gts, 0.35)["j"])


def test_zeroshot_baav_nan_is_null_in_json_and_bad_gt_mode(tmp_path: Path) -> None:
    write_png(tmp_path / "gt" / "0.png", np.zeros((10, 10), np.uint8))  # empty GT
    write_png(tmp_path / "pred" / "0.png", np.zeros((30, 30), np.uint8))  # all zero, resized
    args = ("--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"))
    code, out = _run(*args, "--protocol", "zeroshot-baav", "--json")
    assert code == 0, out
    scores = json.loads(out)
    assert scores["miou"] is None and scores["mean_iou_adaptive"] is None  # NaN, as eval.py
    assert scores["n_adaptive_iou_nan"] == 1 and scores["n_empty_gt"] == 1
    assert scores["j"] == 0.0 and scores["f"] == 0.0 and scores["ciou"] == 0.0
    code, out = _run(*args, "--protocol", "zeroshot-baav")
    assert code == 0 and "miou: nan" in out
    # a palette GT: eval.py would threshold palette indices; refused, naming the file
    bad = tmp_path / "gt" / "0.png"
    img = Image.fromarray(np.zeros((10, 10), np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255])
    img.save(bad)
    with pytest.raises(ArtifactError, match="mode L") as info:
        evaluate_dirs(tmp_path / "pred", tmp_path / "gt", "zeroshot-baav")
    assert info.value.path == bad


def test_retired_zeroshot_name_says_what_to_use(trees: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = trees
    code, out = _run("--pred", str(pred_dir), "--gt", str(gt_dir), "--protocol", "zeroshot")
    assert code == 2 and "zeroshot-baav" in out and "zeroshot-sslalign" in out
    with pytest.raises(ValueError, match="was split"):
        score_frames([], "zeroshot")
