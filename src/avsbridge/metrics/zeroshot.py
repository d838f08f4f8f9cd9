"""Protocol ``zeroshot-sslalign``: cIoU, AUC, mIoU, F (adaptive) and J, F (fixed), SSLalign code.

Written from the SSLalign evaluation code (``Evaluator_iiou.cal_CIOU`` /
``finalize_AUC`` / ``finalize_cIoU`` and ``Evaluator_miou`` in ``utils.py``, the
adaptive threshold in ``test.py``). It is *not* BAaV's ``eval.py``: F here sweeps
255 thresholds over the binarised mask and skips empty-GT samples, and J scores an
empty GT as background accuracy; BAaV's tables use :mod:`avsbridge.metrics.baav`
(``zeroshot-baav``); the two disagree most on data with empty GT.
Checked details:

* Adaptive top-k: k = number of GT pixels (HW // 2 when the GT is empty); the
  threshold is ``sorted(pred)[HW - k]`` (ascending) and the mask is ``pred > thr``
  (strict). With distinct values this keeps k - 1 pixels, and ties at the
  threshold are all dropped -- the official behaviour (``topk_rule="official"``), kept
  for comparable numbers. On tied maps (8-bit PNGs, binary masks) it degenerates: a
  perfect binary mask selects nothing. ``topk_rule="exact"`` keeps exactly k pixels
  (highest first, ties broken in raster order) for such inputs; results say which.
* Per-sample IoU = |M & G| / (|G| + |M & ~G|). An empty GT with an empty mask is 0/0
  in the official code (NaN, which fails every ``>=`` test); it is 0.0 here, which
  gives the same cIoU and AUC.
* ``ciou`` = fraction of samples with IoU >= 0.5. ``auc`` = trapezoidal area under
  (t, fraction of samples with IoU >= t) for t = 0.05 * i, i = 0..20 (computed as
  ``0.05 * i`` like the official list, so e.g. t_3 = 0.15000000000000002).
* ``miou`` = mean per-sample IoU of the adaptive masks. ``fscore`` (adaptive) and
  ``f`` (fixed threshold) follow ``Evaluator_miou.Eval_Fmeasure``: the *binarised*
  mask goes through the 255-threshold PR sweep (so threshold 0 scores the all-pixels
  mask), curves of non-empty-GT frames are averaged over all frames, then the max.
* ``j`` = mean IoU of ``pred > threshold`` with the AVSBench empty-GT rule
  (fraction of background kept), as ``Evaluator_miou.mask_iou``.

Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avsbridge.metrics.avsbench import (
    F_BETA2,
    N_THRESHOLDS,
    check_frame,
    checked_frame_iou,
    checked_fscore_curve,
    iter_checked_frames,
)

AUC_STEPS = 21  # thresholds 0.0, 0.05, ..., 1.0
CIOU_IOU_THRESHOLD = 0.5
TOPK_RULES = ("official", "exact")
PROTOCOL = "zeroshot-sslalign"


def _adaptive_threshold(prob: np.ndarray, gt: np.ndarray) -> float:
    n_pixels = prob.size
    k = int(np.count_nonzero(gt)) or n_pixels // 2
    return float(np.sort(prob.ravel())[n_pixels - k])


def adaptive_threshold(pred: np.ndarray, gt: np.ndarray) -> float:
    """Official adaptive threshold: the (HW - k)-th smallest value, k = GT pixel count or HW // 2."""
    prob, gt_bool = check_frame(pred, gt)
    return _adaptive_threshold(prob, gt_bool)


def _adaptive_mask(prob: np.ndarray, gt: np.ndarray, topk_rule: str) -> np.ndarray:
    if topk_rule == "official":
        return prob > np.float32(_adaptive_threshold(prob, gt))
    k = int(np.count_nonzero(gt)) or prob.size // 2
    # Stable sort of the negated scores: highest first, equal scores in raster order.
    chosen = np.argsort(-prob.ravel(), kind="stable")[:k]
    mask = np.zeros(prob.size, dtype=bool)
    mask[chosen] = True
    return mask.reshape(prob.shape)


def adaptive_mask(pred: np.ndarray, gt: np.ndarray, topk_rule: str = "official") -> np.ndarray:
    """Adaptive top-k mask: ``official`` = pixels strictly above :func:`adaptive_threshold`;
    ``exact`` = exactly k pixels, ties broken in raster order."""
    _check_rule(topk_rule)
    prob, gt_bool = check_frame(pred, gt)
    return _adaptive_mask(prob, gt_bool, topk_rule)


def _check_rule(topk_rule: str) -> None:
    if topk_rule not in TOPK_RULES:
        raise ValueError(f"unknown topk_rule {topk_rule!r}; use one of {TOPK_RULES}")


def sample_iou(mask: np.ndarray, gt: np.ndarray) -> float:
    """SSLalign cIoU of one sample: |M & G| / (|G| + |M & ~G|); 0.0 when both are empty."""
    mask_bool = np.asarray(mask).astype(bool)
    gt_bool = np.asarray(gt).astype(bool)
    if mask_bool.shape != gt_bool.shape:
        raise ValueError(f"mask size {mask_bool.shape} differs from GT size {gt_bool.shape}")
    inter = np.count_nonzero(mask_bool & gt_bool)
    denom = np.count_nonzero(gt_bool) + np.count_nonzero(mask_bool & ~gt_bool)
    return float(inter) / float(denom) if denom else 0.0


def auc_thresholds() -> list[float]:
    """IoU thresholds of the AUC, built as the official list ``[0.05 * i for i in range(21)]``."""
    return [0.05 * i for i in range(AUC_STEPS)]


def success_rates(ious: Sequence[float]) -> list[float]:
    """Fraction of samples with IoU >= t for each AUC threshold t."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no IoU values")
    return [float(np.count_nonzero(values >= t)) / values.size for t in auc_thresholds()]


def auc_from_ious(ious: Sequence[float]) -> float:
    """Trapezoidal area under (threshold, success rate), as ``sklearn.metrics.auc``."""
    xs = np.asarray(auc_thresholds())
    ys = np.asarray(success_rates(ious))
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def ciou_from_ious(ious: Sequence[float], iou_threshold: float = CIOU_IOU_THRESHOLD) -> float:
    """cIoU of the zero-shot tables: fraction of samples with IoU >= ``iou_threshold``."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no IoU values")
    return float(np.count_nonzero(values >= iou_threshold)) / values.size


def _binary_curve(mask: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Official Evaluator_miou F curve: the binary mask swept over the 255 thresholds."""
    return checked_fscore_curve(mask.astype(np.float32), gt, F_BETA2, N_THRESHOLDS)


def _max_mean_curve(curves: list[np.ndarray]) -> float:
    return float(np.mean(curves, axis=0).max()) if curves else 0.0


def score_zeroshot(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    threshold: float = 0.5,
    topk_rule: str = "official",
) -> dict[str, Any]:
    """All zero-shot scores of a sample list (one sample = one frame and its GT), one pass."""
    _check_rule(topk_rule)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    ious: list[float] = []
    fixed_ious: list[float] = []
    adaptive_curves: list[np.ndarray] = []
    fixed_curves: list[np.ndarray] = []
    n_empty = 0
    for prob, gt in iter_checked_frames(preds, gts):
        adaptive = _adaptive_mask(prob, gt, topk_rule)
        fixed = prob > np.float32(threshold)
        ious.append(sample_iou(adaptive, gt))
        fixed_ious.append(checked_frame_iou(fixed.astype(np.float32), gt))
        if gt.any():
            adaptive_curves.append(_binary_curve(adaptive, gt))
            fixed_curves.append(_binary_curve(fixed, gt))
        else:
            n_empty += 1
    return {
        "ciou": ciou_from_ious(ious),
        "auc": auc_from_ious(ious),
        "miou": float(np.mean(ious)),
        "fscore": _max_mean_curve(adaptive_curves),
        "j": float(np.mean(fixed_ious)),
        "f": _max_mean_curve(fixed_curves),
        "threshold": float(threshold),
        "topk_rule": topk_rule,
        "fscore_variant": "zeroshot-pooled",
        "batch_size": None,
        "n_frames": len(ious),
        "n_empty_gt": n_empty,
    }
