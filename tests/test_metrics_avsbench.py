"""AVSBench-object metrics against hand-computed cases (arithmetic in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from avsbridge.metrics.avsbench import (
    AVSBenchScores,
    frame_fscore_curve,
    frame_miou,
    fscore_official,
    fscore_pooled,
    miou,
    pr_thresholds,
    score_avsbench,
)

F32 = np.float32


def _frame(values: list[float]) -> np.ndarray:
    return np.array([values], dtype=F32)


def _mask(values: list[int]) -> np.ndarray:
    return np.array([values], dtype=bool)


# Five 1x2 frames chosen so that the batch size changes the F-score.
# A: pred (0.8, 0.2), GT (1, 0).  F curve over thresholds t:
#    t <= 0.2       : both pixels positive, P = 1/2, R = 1 -> F = 1.3*0.5/(0.15+1) = 13/23
#    0.2 < t <= 0.8 : only the GT pixel,   P = 1,   R = 1 -> F = 1
#    t > 0.8        : nothing positive                    -> F = 0
# B: pred (0.1, 0.7), GT (1, 0).
#    t <= 0.1       : 13/23;  0.1 < t <= 0.7: only the wrong pixel -> 0;  above: 0
# E: pred (0.2, 0.3), GT empty (skipped by F; IoU = background kept = 2/2 = 1).
A = (_frame([0.8, 0.2]), _mask([1, 0]))
B = (_frame([0.1, 0.7]), _mask([1, 0]))
E = (_frame([0.2, 0.3]), _mask([0, 0]))
FRAMES = [A, A, B, B, E]
PREDS = [p for p, _ in FRAMES]
GTS = [g for _, g in FRAMES]


def test_frame_miou_hand_computed() -> None:
    # pred > 0.5 -> [[1, 0], [1, 0]]; GT [[1, 1], [0, 0]]: inter 1, union 3.
    pred = np.array([[0.9, 0.2], [0.7, 0.1]], dtype=F32)
    gt = np.array([[1, 1], [0, 0]], dtype=np.uint8)
    assert frame_miou(pred, gt) == pytest.approx(1 / 3)


def test_frame_miou_threshold_is_strict_at_half() -> None:
    # 0.5 is background, 0.51 foreground: inter 1, union 2.
    assert frame_miou(_frame([0.5, 0.51]), _mask([1, 1])) == pytest.approx(0.5)
    # All exactly 0.5 with empty GT: every pixel correctly left background.
    assert frame_miou(_frame([0.5, 0.5]), _mask([0, 0])) == pytest.approx(1.0)


def test_frame_miou_empty_gt_scores_background_fraction() -> None:
    # Only 0.6 is foreground: 3 of 4 pixels are correctly background.
    pred = np.array([[0.6, 0.4], [0.1, 0.2]], dtype=F32)
    assert frame_miou(pred, np.zeros((2, 2), dtype=bool)) == pytest.approx(0.75)


def test_miou_frame_mean_and_batch_mean() -> None:
    # Frame IoUs: A 1, A 1, B 0 (fg = pixel 2, GT pixel 1: inter 0, union 2), B 0, E 1.
    assert miou(PREDS, GTS) == pytest.approx(3 / 5)
    # batch 4: mean(mean(1,1,0,0), mean(1)) = mean(0.5, 1) = 0.75 -- the short batch weighs more.
    assert miou(PREDS, GTS, batch_size=4) == pytest.approx(0.75)
    # batch 2: mean(1, 0, 1) = 2/3.
    assert miou(PREDS, GTS, batch_size=2) == pytest.approx(2 / 3)


def test_fscore_curve_of_frame_a() -> None:
    curve = frame_fscore_curve(*A)
    assert curve.shape == (255,)
    # thresholds t_i = i/254: t_50 = 0.197 <= 0.2 < t_51 = 0.2008; t_203 = 0.7992 <= 0.8 < t_204.
    assert curve[0] == pytest.approx(13 / 23)
    assert curve[50] == pytest.approx(13 / 23)
    assert curve[51] == pytest.approx(1.0)
    assert curve[203] == pytest.approx(1.0)
    assert curve[204] == 0.0
    assert curve[254] == 0.0


def test_thresholds_match_official_float32_sweep() -> None:
    thresholds = pr_thresholds()
    assert thresholds.dtype == np.float32 and thresholds.shape == (255,)
    assert thresholds[0] == 0.0
    # 1 - 1e-10 rounds to exactly 1.0 in float32, so a prediction of 1.0 passes the last one.
    assert thresholds[-1] == 1.0
    curve = frame_fscore_curve(_frame([1.0, 0.0]), _mask([1, 0]))
    assert curve[-1] == pytest.approx(1.0)


def test_batch_size_changes_official_fscore() -> None:
    # batch 1: per-frame maxima A 1, A 1, B 13/23, B 13/23, E (all-empty batch) 0
    #          -> (2 + 26/23) / 5 = 72/115
    assert fscore_official(PREDS, GTS, batch_size=1) == pytest.approx(72 / 115)
    # batch 2: [A, A] 1, [B, B] 13/23, [E] 0 -> (36/23) / 3 = 12/23
    assert fscore_official(PREDS, GTS, batch_size=2) == pytest.approx(12 / 23)
    # batch 4: [A, A, B, B] mean curve: t <= 0.1: 13/23; (0.1, 0.2]: 13/46; (0.2, 0.7]: 1/2
    #          -> max 13/23; [E] 0 -> (13/23) / 2 = 13/46
    assert fscore_official(PREDS, GTS, batch_size=4) == pytest.approx(13 / 46)
    # pooled: same mean curve over the 4 non-empty frames, E skipped -> 13/23
    assert fscore_pooled(PREDS, GTS) == pytest.approx(13 / 23)


def test_batch_order_matters_for_official_fscore() -> None:
    # [A, B] and [A, B]: each batch's mean curve peaks at 13/23 (t <= 0.1), never 1.
    reordered = [A, B, A, B]
    preds = [p for p, _ in reordered]
    gts = [g for _, g in reordered]
    assert fscore_official(preds, gts, batch_size=2) == pytest.approx(13 / 23)
    # [A, A] and [B, B]: (1 + 13/23) / 2 = 18/23.
    grouped = [A, A, B, B]
    assert fscore_official(
        [p for p, _ in grouped], [g for _, g in grouped], batch_size=2
    ) == pytest.approx(18 / 23)


def test_all_empty_gt_gives_zero_fscore() -> None:
    preds = [PREDS[4], PREDS[4]]
    gts = [GTS[4], GTS[4]]
    assert fscore_official(preds, gts, batch_size=1) == 0.0
    assert fscore_pooled(preds, gts) == 0.0
    assert miou(preds, gts) == pytest.approx(1.0)


def test_score_avsbench_variants() -> None:
    official = score_avsbench(PREDS, GTS, variant="official", batch_size=4)
    assert official == AVSBenchScores(
        miou=pytest.approx(0.75),
        fscore=pytest.approx(13 / 46),
        fscore_variant="official",
        batch_size=4,
        n_frames=5,
        n_empty_gt=1,
    )
    pooled = score_avsbench(PREDS, GTS, variant="pooled")
    assert pooled.fscore_variant == "pooled" and pooled.batch_size is None
    assert pooled.miou == pytest.approx(0.6)
    assert pooled.fscore == pytest.approx(13 / 23)
    assert pooled.to_dict()["n_frames"] == 5


def test_perfect_prediction_scores_one() -> None:
    rng = np.random.default_rng(3)
    gts = [rng.random((8, 8)) < 0.4 for _ in range(6)]
    preds = [g.astype(F32) for g in gts]
    scores = score_avsbench(preds, gts, batch_size=4)
    assert scores.miou == pytest.approx(1.0)
    assert scores.fscore == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((2, 3), F32), np.zeros((3, 2), bool), "differs from GT size"),
        (np.zeros((2, 2, 1), F32), np.zeros((2, 2, 1), bool), "2-D"),
        (np.full((2, 2), 1.5, F32), np.zeros((2, 2), bool), "outside"),
        (np.full((2, 2), np.nan, F32), np.zeros((2, 2), bool), "NaN"),
    ],
)
def test_bad_frames_raise(pred: np.ndarray, gt: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_avsbench([pred], [gt])


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="predictions but"):
        miou(PREDS, GTS[:2])
    with pytest.raises(ValueError, match="no frames"):
        fscore_pooled([], [])
    with pytest.raises(ValueError, match="batch_size"):
        fscore_official(PREDS, GTS, batch_size=0)
    with pytest.raises(ValueError, match="variant"):
        score_avsbench(PREDS, GTS, variant="best")
