"""AVSBench-semantic (AVSS) metrics: per-class mIoU and F at the argmax labels.

Written from the official AVSS test code (``_batch_miou_fscore`` in
``avs_scripts/avss/utils/compute_color_metrics.py`` and the loop of ``test.py``).
What the official code does, reproduced here:

* Per frame and class c: intersection, predicted area and GT area (a histogram of the
  label maps); union = pred + GT - intersection; IoU_c = inter / union (0 when the
  class is absent from both); precision = inter / pred, recall = inter / GT,
  F_c = (1 + b2) P R / (b2 P + R) with b2 = 0.3 and 0/0 cases set to 0.
* Per class, frame IoUs and Fs are summed and divided by the number of frames in
  which the class occurs in prediction or GT (``cls_count``): a mean of frame scores,
  not pooled intersection / union. ``miou`` / ``fscore`` then average over the
  classes that occurred at least once (the official per-batch print); the official
  final line averages over all ``n_classes`` with absent classes as 0 -- reported as
  ``miou_all_classes`` / ``fscore_all_classes``; the two agree when every class occurs.
* ``miou_pooled`` is the other common convention (intersection and union summed per
  class over all frames, then the mean over present classes), given for comparison.

Inputs are integer label maps (class ids 0 .. n_classes-1, background 0 as in
``label2idx.json``). Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_CLASSES = 71
F_BETA2 = 0.3


def _check_labels(
    pred: np.ndarray, gt: np.ndarray, n_classes: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    pred_arr = np.asarray(pred)
    gt_arr = np.asarray(gt)
    if pred_arr.ndim != 2 or pred_arr.shape != gt_arr.shape:
        raise ValueError(
            f"frame {index}: prediction {pred_arr.shape} and GT {gt_arr.shape} must be equal 2-D label maps"
        )
    for name, arr in (("prediction", pred_arr), ("GT", gt_arr)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"frame {index}: {name} labels must be integers, got {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(
                f"frame {index}: {name} holds class id {int(arr.max() if arr.max() >= n_classes else arr.min())}"
                f" outside 0..{n_classes - 1}"
            )
    return pred_arr.astype(np.int64).ravel(), gt_arr.astype(np.int64).ravel()


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def score_avss(
    pred_labels: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    n_classes: int = N_CLASSES,
    beta2: float = F_BETA2,
    background_index: int = 0,
) -> dict[str, Any]:
    """Official AVSS mIoU / F over a list of frames (see module docstring for the variants)."""
    if len(pred_labels) != len(gt_labels):
        raise ValueError(f"{len(pred_labels)} predictions but {len(gt_labels)} GT label maps")
    if not pred_labels:
        raise ValueError("no frames to score")
    if not 0 <= background_index < n_classes:
        raise ValueError(f"background_index {background_index} outside 0..{n_classes - 1}")
    iou_sum = np.zeros(n_classes)
    f_sum = np.zeros(n_classes)
    frames_with_class = np.zeros(n_classes, dtype=np.int64)
    inter_total = np.zeros(n_classes, dtype=np.int64)
    union_total = np.zeros(n_classes, dtype=np.int64)
    for index, (pred, gt) in enumerate(zip(pred_labels, gt_labels, strict=True)):
        p, g = _check_labels(pred, gt, n_classes, index)
        inter = np.bincount(p[p == g], minlength=n_classes)
        area_pred = np.bincount(p, minlength=n_classes)
        area_gt = np.bincount(g, minlength=n_classes)
        union = area_pred + area_gt - inter
        iou_sum += _safe_ratio(inter, union)
        precision = _safe_ratio(inter, area_pred)
        recall = _safe_ratio(inter, area_gt)
        f_sum += _safe_ratio((1.0 + beta2) * precision * recall, beta2 * precision + recall)
        frames_with_class += union > 0
        inter_total += inter
        union_total += union
    present = frames_with_class > 0
    per_class_iou = _safe_ratio(iou_sum, frames_with_class.astype(np.float64))
    per_class_f = _safe_ratio(f_sum, frames_with_class.astype(np.float64))
    pooled_iou = _safe_ratio(inter_total.astype(np.float64), union_total.astype(np.float64))
    present_no_bg = present.copy()
    present_no_bg[background_index] = False

    def _mean(values: np.ndarray, mask: np.ndarray) -> float:
        return float(values[mask].mean()) if mask.any() else 0.0

    return {
        "miou": _mean(per_class_iou, present),
        "fscore": _mean(per_class_f, present),
        "miou_all_classes": float(per_class_iou.mean()),
        "fscore_all_classes": float(per_class_f.mean()),
        "miou_no_bg": _mean(per_class_iou, present_no_bg),
        "fscore_no_bg": _mean(per_class_f, present_no_bg),
        "miou_pooled": _mean(pooled_iou, present),
        "fscore_variant": "avss-argmax",
        "n_frames": len(pred_labels),
        "n_classes": n_classes,
        "n_classes_present": int(present.sum()),
        "per_class_iou": [
            float(v) if ok else None for v, ok in zip(per_class_iou, present, strict=True)
        ],
        "per_class_fscore": [
            float(v) if ok else None for v, ok in zip(per_class_f, present, strict=True)
        ],
    }
