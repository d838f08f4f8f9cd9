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
  not pooled intersection / union.
* The official code yields **two** AVSS numbers from those per-class scores
  (:data:`OFFICIAL_AVSS_NUMBERS`):

  - the per-batch print of ``test.py`` (``n_iter: ..., iou: ..., F_score: ...``; after
    the last batch it covers the whole test set): the mean over the classes that
    occurred at least once -- ``miou_present_classes`` / ``fscore_present_classes``
    (also ``miou`` / ``fscore``, this module's historical keys);
  - the final ``logger.info('test | cls ..., miou: ..., F_score: ...')`` line: the mean
    over all ``n_classes`` (71) with never-occurring classes as 0 --
    ``miou_all_classes`` / ``fscore_all_classes``.

  They agree only when every class occurs in prediction or GT. On the real test split
  four categories never sound (axe, clipper, harmonica, utv are in no test row's
  ``a_obj`` of ``metadata.csv``), so unless a model predicts them somewhere the
  all-class mean divides the same sum by 71 instead of 67 and is the smaller number.
* Which number each paper reports (:data:`PAPER_AVSS_NUMBER`): SSP and TeSO both
  report the final all-71-class mean. SSP: its baseline and ablation start row is
  AAVS / Stepping Stones (48.5 / 53.2, SSP Tables 1-2), whose released evaluation
  (GeWu-Lab/Stepping-Stones ``avss/scripts/evaluation.py``) computes only
  ``mean(miou_pc)`` over ``N_CLASSES = 71`` with NaN -> 0 and prints those numbers in its
  README. TeSO: its repository (GeWu-Lab/Sounding-Object-Segmentation-Preference)
  ships no AVSS evaluation; it comes from the same group and code line as Stepping
  Stones (identical binary ``mask_iou`` / ``Eval_Fmeasure`` helpers), whose only AVSS
  evaluation is that all-class mean, and its AVSS table copies AVSBench's 29.8 / 0.352,
  the number AVSBench's final log line gives. Weaker evidence for TeSO than for SSP;
  see the report note.
* Not reproduced: the official ``miou_noBg`` drops the *last* class id
  (``miou_pc[:-1]``), not background 0; ``miou_no_bg`` here drops ``background_index``
  over present classes and is not an official number. Also note ``test.py`` at
  f7414af unpacks three values from ``calc_color_miou_fscore``, which returns four, so
  the script as published stops with a ValueError before its first print.
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

#: The two numbers of the official AVSS test code -> (mIoU key, F key) of :func:`score_avss`.
OFFICIAL_AVSS_NUMBERS: dict[str, tuple[str, str]] = {
    "per_batch_print": ("miou_present_classes", "fscore_present_classes"),
    "final_log_line": ("miou_all_classes", "fscore_all_classes"),
}

#: Which official number each paper's AVSS columns report (evidence: module docstring).
PAPER_AVSS_NUMBER: dict[str, str] = {"ssp": "final_log_line", "teso": "final_log_line"}


def paper_avss_keys(paper: str) -> tuple[str, str]:
    """(mIoU key, F key) of :func:`score_avss` that fill ``paper``'s AVSS columns."""
    try:
        return OFFICIAL_AVSS_NUMBERS[PAPER_AVSS_NUMBER[paper]]
    except KeyError:
        raise ValueError(
            f"no AVSS number recorded for paper {paper!r}; known: {sorted(PAPER_AVSS_NUMBER)}"
        ) from None


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

    miou_present = _mean(per_class_iou, present)
    fscore_present = _mean(per_class_f, present)
    return {
        "miou": miou_present,
        "fscore": fscore_present,
        "miou_present_classes": miou_present,
        "fscore_present_classes": fscore_present,
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
