"""Zero-shot (BAaV / SSLalign) metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from avsbridge.metrics.zeroshot import (
    adaptive_mask,
    adaptive_threshold,
    auc_from_ious,
    auc_thresholds,
    ciou_from_ious,
    sample_iou,
    score_zeroshot,
    success_rates,
)

F32 = np.float32


def test_adaptive_topk_follows_official_strict_threshold() -> None:
    # k = 2 GT pixels; sorted (0.1, 0.3, 0.4, 0.9)[4 - 2] = 0.4; mask = pred > 0.4 keeps 1 pixel.
    pred = np.array([[0.1, 0.4, 0.3, 0.9]], F32)
    gt = np.array([[0, 1, 0, 1]], bool)
    assert adaptive_threshold(pred, gt) == pytest.approx(0.4)
    assert adaptive_mask(pred, gt).tolist() == [[False, False, False, True]]
    # IoU = 1 / (|G| 2 + false positives 0) = 0.5
    assert sample_iou(adaptive_mask(pred, gt), gt) == pytest.approx(0.5)


def test_adaptive_topk_with_empty_gt_uses_half_the_pixels() -> None:
    # Empty GT: k = 4 // 2 = 2; threshold sorted(...)[2] = 0.3; mask keeps 0.4 only; IoU 0 / 1 = 0.
    pred = np.array([[0.1, 0.2], [0.3, 0.4]], F32)
    gt = np.zeros((2, 2), bool)
    assert adaptive_threshold(pred, gt) == pytest.approx(0.3)
    assert adaptive_mask(pred, gt).sum() == 1
    assert sample_iou(adaptive_mask(pred, gt), gt) == 0.0
    # Flat prediction and empty GT: empty mask, 0/0 -> 0.0 (NaN in the official code: fails every test).
    flat = np.full((2, 2), 0.5, F32)
    assert sample_iou(adaptive_mask(flat, gt), gt) == 0.0


def test_auc_on_hand_made_iou_list() -> None:
    ious = [0.0, 0.3, 0.5, 1.0]
    # Official thresholds are 0.05 * i, so t_6 = 0.30000000000000004 > 0.3 and t_10 = 0.5 exactly.
    thresholds = auc_thresholds()
    assert thresholds[6] > 0.3 and thresholds[10] == 0.5 and thresholds[20] == 1.0
    # success rates: t_0: 4/4; t_1..t_5: 3/4; t_6..t_10: 2/4; t_11..t_20: 1/4
    assert success_rates(ious) == [1.0] + [0.75] * 5 + [0.5] * 5 + [0.25] * 10
    # trapezoids (x 0.05): 0.875 + 4*0.75 + 0.625 + 4*0.5 + 0.375 + 9*0.25 = 9.125 -> 0.45625
    assert auc_from_ious(ious) == pytest.approx(0.45625)
    # cIoU: IoU >= 0.5 for 0.5 and 1.0 -> 2/4
    assert ciou_from_ious(ious) == pytest.approx(0.5)


def test_auc_extremes() -> None:
    assert auc_from_ious([1.0, 1.0]) == pytest.approx(1.0)
    # all zero: only t_0 succeeds -> one trapezoid (1 + 0)/2 * 0.05
    assert auc_from_ious([0.0, 0.0]) == pytest.approx(0.025)
    with pytest.raises(ValueError):
        auc_from_ious([])


def test_score_zeroshot_hand_computed() -> None:
    # Sample 1: pred (0.1, 0.4, 0.3, 0.9), GT (0, 1, 0, 1)
    #   adaptive mask (0, 0, 0, 1): IoU 1/2.  fixed > 0.5: (0, 0, 0, 1): J 1/2.
    #   F curve of that binary mask: t = 0 -> all 4 pixels: P 1/2, R 1 -> 13/23;
    #   t > 0 -> P 1, R 1/2 -> 1.3*0.5/0.8 = 13/16.
    # Sample 2: pred (0.5, 0.6, 0.2, 0.7), GT (1, 1, 0, 0)
    #   adaptive: sorted (0.2, 0.5, 0.6, 0.7)[2] = 0.6 -> mask (0, 0, 0, 1): IoU 0 / (2 + 1) = 0.
    #   fixed > 0.5 (0.5 itself is out): (0, 1, 0, 1): inter 1, union 3 -> J 1/3.
    #   adaptive F curve: t = 0 -> 13/23; t > 0 -> 0.
    #   fixed F curve: t = 0 -> 13/23; t > 0 -> P 1/2, R 1/2 -> 1.3*0.25/0.65 = 1/2.
    preds = [np.array([[0.1, 0.4, 0.3, 0.9]], F32), np.array([[0.5, 0.6, 0.2, 0.7]], F32)]
    gts = [np.array([[0, 1, 0, 1]], bool), np.array([[1, 1, 0, 0]], bool)]
    result = score_zeroshot(preds, gts, threshold=0.5)
    assert result["ciou"] == pytest.approx(0.5)  # IoUs (0.5, 0): 0.5 >= 0.5
    assert result["miou"] == pytest.approx(0.25)
    # success: t_0 1; t_1..t_10 1/2; rest 0 -> (0.75 + 9*0.5 + 0.25) * 0.05 = 0.275
    assert result["auc"] == pytest.approx(0.275)
    # adaptive F: mean curve t = 0: 13/23; t > 0: (13/16 + 0)/2 = 13/32 -> max 13/23
    assert result["fscore"] == pytest.approx(13 / 23)
    assert result["j"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    # fixed F: mean curve t = 0: 13/23; t > 0: (13/16 + 1/2)/2 = 21/32 -> max 21/32
    assert result["f"] == pytest.approx(21 / 32)
    assert result["n_frames"] == 2 and result["n_empty_gt"] == 0


def test_score_zeroshot_empty_gt_sample() -> None:
    # Empty GT: adaptive IoU 0; J uses the AVSBench rule (background kept: 3/4 with one pixel > 0.5);
    # F skips the frame, leaving no curve -> 0.
    pred = np.array([[0.1, 0.2], [0.3, 0.9]], F32)
    result = score_zeroshot([pred], [np.zeros((2, 2), bool)])
    assert result["miou"] == 0.0 and result["ciou"] == 0.0
    assert result["j"] == pytest.approx(0.75)
    assert result["fscore"] == 0.0 and result["f"] == 0.0
    assert result["n_empty_gt"] == 1


def test_score_zeroshot_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="threshold"):
        score_zeroshot([np.zeros((2, 2), F32)], [np.zeros((2, 2), bool)], threshold=2.0)
    with pytest.raises(ValueError, match="differs"):
        score_zeroshot([np.zeros((2, 2), F32)], [np.zeros((2, 3), bool)])


def test_official_topk_degenerates_on_binary_maps_exact_rule_does_not() -> None:
    # A perfect binary prediction: k = 2, official threshold sorted(0, 0, 1, 1)[2] = 1,
    # nothing is > 1 -> empty mask, IoU 0. The exact rule keeps the two 1-pixels -> IoU 1.
    gt = np.array([[1, 0, 1, 0]], bool)
    pred = gt.astype(F32)
    assert adaptive_mask(pred, gt).sum() == 0
    assert sample_iou(adaptive_mask(pred, gt, topk_rule="exact"), gt) == 1.0
    official = score_zeroshot([pred], [gt])
    exact = score_zeroshot([pred], [gt], topk_rule="exact")
    assert official["miou"] == 0.0 and official["topk_rule"] == "official"
    assert exact["miou"] == 1.0 and exact["ciou"] == 1.0 and exact["topk_rule"] == "exact"


def test_exact_topk_breaks_ties_in_raster_order() -> None:
    # k = 2 of three tied 0.7 pixels: the first two in raster order.
    pred = np.array([[0.7, 0.2, 0.7, 0.7]], F32)
    gt = np.array([[0, 1, 0, 1]], bool)
    assert adaptive_mask(pred, gt, topk_rule="exact").tolist() == [[True, False, True, False]]
    with pytest.raises(ValueError, match="topk_rule"):
        adaptive_mask(pred, gt, topk_rule="median")
