"""AVSS semantic metrics against a hand-computed 3-class case."""

from __future__ import annotations

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
