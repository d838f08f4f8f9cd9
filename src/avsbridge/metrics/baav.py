"""BAaV zero-shot protocol: exactly the numbers of BAaV's ``eval.py``, under honest names.

Written from cid2rrrr/BAaV ``eval.py`` (``main``) and ``utils/utils.py``
(``Evaluator_iiou.cal_CIOU``, ``cal_CIOU_adap``, ``finalize_cIoU``, ``finalize_AUC``),
commit 149358d, MIT; tests import those files by path and compare (the code is not
copied here). The rules, per sample (one image, one audio file, one GT mask):

* GT: the GT image resized to 224 x 224 with PIL's default filter for its mode
  (bicubic for 8-bit grey) and binarised at ``>= 128`` (:func:`prepare_gt`).
* Fixed mask: ``pred > 0.5`` (``eval.py`` hard-codes 0.5; the paper says "the
  thresholds selected for the original RIS models", so the threshold is a parameter
  whose default is eval.py's). Adaptive mask: k = number of GT pixels (HW // 2 when the
  GT is empty), threshold = ``sort(pred)[HW - k]`` (the k-th largest value), mask =
  ``pred > threshold`` -- strict, so ties at the threshold are all dropped.
* IoU = |M & G| / (|G| + |M & ~G|). An empty GT with an empty mask is 0/0 = NaN: the
  fixed-threshold IoU turns NaN into 0 (``if ciou != ciou``); the adaptive IoU keeps it.
  A NaN fails every ``>= t`` test (so it counts as a miss in cIoU and AUC) and makes the
  mean adaptive IoU NaN, as in eval.py; :func:`summarize` reports how many were NaN.
* F_beta (beta^2 = 0.3) of the one binary mask, no threshold sweep: precision and
  recall are 0 when undefined, F is 0 when ``beta^2 P + R`` is 0 (so every empty-GT
  sample scores F = 0), and the mean runs over all samples, empty GT included.
* cIoU = share of samples with adaptive IoU >= 0.5; AUC = trapezoid area
  (``sklearn.metrics.auc``) over t = 0.05 i, i = 0..20, of the share with IoU >= t.

What eval.py prints, and what each line really is (its labels mislead):

====================  ===========================================  =========================
eval.py print label   quantity                                     key here
====================  ===========================================  =========================
``CIoU_adap``         share of adaptive IoUs >= 0.5                ``ciou_adaptive``
``AUC_adap``          AUC of the adaptive IoUs                     ``auc_adaptive``
``mIoU_adap``         mean **fixed-threshold** IoU (NaN -> 0)      ``mean_iou_fixed``
``F-Score_adap``      mean F_beta of the adaptive masks            ``mean_fbeta_adaptive``
``Jaccard``           mean **adaptive** IoU (NaN kept)             ``mean_iou_adaptive``
``F-score``           mean F_beta of the fixed-threshold masks     ``mean_fbeta_fixed``
====================  ===========================================  =========================

The paper's columns (BAaV section 4.3) follow the definitions, not the labels: cIoU,
AUC, mIoU and Fscore are "the above metrics that rely on GT mask sizes" (the adaptive
top-k masks), while J and F are "the mIoU and F-score of the final predicted masks
using thresholding". So paper mIoU = ``mean_iou_adaptive`` (eval.py's "Jaccard") and
paper J = ``mean_iou_fixed`` (eval.py's "mIoU_adap"). The printed values bear this out:
the AUC over [0, 1] of the share with IoU >= t approximates the mean of the same IoUs,
and in 47 of the 48 rows of BAaV Tables 1-3 mIoU sits 0.0-1.0 below AUC (the one
exception: SSL-TIE on S4, 38.5 vs 28.9), while J is 1.7-13.0 below mIoU -- the paper's
mIoU is the mean of the IoUs its AUC was computed from, the adaptive ones.
:data:`PAPER_COLUMNS` records that mapping.

Pure numpy (PIL only to resize a GT array the way eval.py does), no file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

PROTOCOL = "zeroshot-baav"
GT_SIZE = 224
GT_BINARY_THRESHOLD = 128
FIXED_THRESHOLD = 0.5
F_BETA2 = 0.3
CIOU_IOU_THRESHOLD = 0.5
AUC_STEPS = 21  # IoU thresholds 0.05 * i, i = 0..20

#: Paper column (BAaV Tables 1-3) -> key of :func:`summarize` (see the module docstring).
PAPER_COLUMNS: dict[str, str] = {
    "cIoU": "ciou_adaptive",
    "AUC": "auc_adaptive",
    "mIoU": "mean_iou_adaptive",
    "Fscore": "mean_fbeta_adaptive",
    "J": "mean_iou_fixed",
    "F": "mean_fbeta_fixed",
}

#: eval.py print label -> key of :func:`summarize` (what the printed line really holds).
EVAL_PY_PRINT_LABELS: dict[str, str] = {
    "CIoU_adap": "ciou_adaptive",
    "AUC_adap": "auc_adaptive",
    "mIoU_adap": "mean_iou_fixed",
    "F-Score_adap": "mean_fbeta_adaptive",
    "Jaccard": "mean_iou_adaptive",
    "F-score": "mean_fbeta_fixed",
}

#: Short keys shared with the ``zeroshot-sslalign`` protocol (the tables' column keys).
_SHORT_KEYS: dict[str, str] = {
    "ciou": "ciou_adaptive",
    "auc": "auc_adaptive",
    "miou": "mean_iou_adaptive",
    "fscore": "mean_fbeta_adaptive",
    "j": "mean_iou_fixed",
    "f": "mean_fbeta_fixed",
}


# --------------------------------------------------------------------------- inputs


def resize_gt(gt: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """8-bit grey GT resized to ``size`` x ``size`` as eval.py does (PIL default: bicubic).

    A bool mask is read as 0 / 255 grey first (a binary mask PNG). Other dtypes or
    shapes are errors: eval.py only works on single-channel 8-bit GTs.
    """
    arr = np.asarray(gt)
    if arr.ndim != 2:
        raise ValueError(f"GT must be a 2-D single-channel map, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype != np.uint8:
        raise ValueError(f"GT must be 8-bit grey (uint8) or bool, got {arr.dtype}")
    img = Image.fromarray(arr, mode="L")
    if img.size != (size, size):
        img = img.resize((size, size))  # no filter given: PIL's default, as eval.py
    return np.asarray(img)


def binarize_gt(gt: np.ndarray) -> np.ndarray:
    """GT pixels >= 128 are foreground (eval.py: ``gt[gt < 128] = 0; gt[gt >= 128] = 1``)."""
    return np.asarray(gt) >= GT_BINARY_THRESHOLD


def prepare_gt(gt: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """Bool GT at ``size`` x ``size``: :func:`resize_gt`, then :func:`binarize_gt`."""
    return binarize_gt(resize_gt(gt, size))


def resize_prediction(pred: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """Probability map resized to ``size`` x ``size`` like BAaV's model output.

    BAaV's ``evalutate`` ends with ``F.interpolate(sigmoid, (224, 224), mode="bilinear",
    align_corners=False)``; this is that interpolation (half-pixel centres, edge
    clamping, no antialiasing) in float32, for predictions stored at another size; it
    equals torch's up to float32 rounding of the weights (~1e-5).
    """
    arr = np.asarray(pred, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"prediction must be a 2-D map, got shape {arr.shape}")
    if arr.shape == (size, size):
        return arr
    rows = _bilinear_axis(arr.shape[0], size)
    cols = _bilinear_axis(arr.shape[1], size)
    r0, r1, rw = rows
    c0, c1, cw = cols
    top = arr[r0][:, c0] * (1 - cw) + arr[r0][:, c1] * cw
    bottom = arr[r1][:, c0] * (1 - cw) + arr[r1][:, c1] * cw
    out = top * (1 - rw)[:, None] + bottom * rw[:, None]
    return out.astype(np.float32)


def _bilinear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = np.float32(n_in / n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0.astype(np.float32)).astype(np.float32)


def _check_sample(pred: np.ndarray, gt: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    pred_arr = np.asarray(pred)
    gt_arr = np.asarray(gt)
    if pred_arr.ndim != 2 or pred_arr.shape != gt_arr.shape:
        raise ValueError(
            f"sample {index}: prediction {pred_arr.shape} and GT {gt_arr.shape} must be"
            " equal 2-D maps (the protocol scores 224 x 224; see prepare_gt)"
        )
    if not np.issubdtype(pred_arr.dtype, np.floating):
        pred_arr = pred_arr.astype(np.float32)
    if not np.all(np.isfinite(pred_arr)):
        raise ValueError(f"sample {index}: prediction holds NaN or infinite values")
    if pred_arr.size and (pred_arr.min() < 0 or pred_arr.max() > 1):
        raise ValueError(f"sample {index}: prediction values outside [0, 1] (pass probabilities)")
    if gt_arr.dtype != bool and not np.isin(gt_arr, (0, 1)).all():
        raise ValueError(f"sample {index}: GT must be binary (0/1 or bool); see prepare_gt")
    return pred_arr, gt_arr.astype(bool)


# --------------------------------------------------------------------------- one sample


def fixed_mask(pred: np.ndarray, threshold: float = FIXED_THRESHOLD) -> np.ndarray:
    """``pred > threshold`` (strict), compared in the prediction's own float type."""
    arr = np.asarray(pred)
    if np.issubdtype(arr.dtype, np.floating):
        # eval.py compares a float32 map with a Python float: NumPy casts the float to float32.
        return arr > arr.dtype.type(threshold)
    return arr > threshold


def adaptive_k(gt: np.ndarray) -> int:
    """Pixels the adaptive mask aims at: the GT pixel count, HW // 2 when the GT is empty."""
    gt_arr = np.asarray(gt)
    return int(np.count_nonzero(gt_arr)) or gt_arr.size // 2


def adaptive_threshold(pred: np.ndarray, gt: np.ndarray) -> float:
    """The k-th largest prediction value, ``sort(pred)[HW - k]`` (k from :func:`adaptive_k`)."""
    arr = np.asarray(pred)
    return np.sort(arr.ravel())[arr.size - adaptive_k(gt)]


def adaptive_mask(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred > adaptive_threshold`` (strict: ties at the threshold are dropped)."""
    arr = np.asarray(pred)
    return arr > adaptive_threshold(arr, gt)


def _counts(mask: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    m = np.asarray(mask).astype(bool)
    g = np.asarray(gt).astype(bool)
    if m.shape != g.shape:
        raise ValueError(f"mask size {m.shape} differs from GT size {g.shape}")
    inter = int(np.count_nonzero(m & g))
    false_pos = int(np.count_nonzero(m & ~g))
    false_neg = int(np.count_nonzero(~m & g))
    return inter, false_pos, false_neg, int(np.count_nonzero(g))


def sample_iou(mask: np.ndarray, gt: np.ndarray) -> float:
    """|M & G| / (|G| + |M & ~G|); NaN when both are empty (0/0, as eval.py)."""
    inter, false_pos, _, n_gt = _counts(mask, gt)
    denom = n_gt + false_pos
    return float(inter) / float(denom) if denom else math.nan


def sample_fbeta(mask: np.ndarray, gt: np.ndarray, beta2: float = F_BETA2) -> float:
    """F_beta of one binary mask; precision, recall and F are 0 where undefined."""
    inter, false_pos, false_neg, _ = _counts(mask, gt)
    precision = inter / (inter + false_pos) if inter + false_pos > 0 else 0
    recall = inter / (inter + false_neg) if inter + false_neg > 0 else 0
    denom = beta2 * precision + recall
    # Same operation order as eval.py, so the float result is bit-identical.
    return float((1 + beta2) * (precision * recall) / denom) if denom > 0 else 0.0


@dataclass(frozen=True)
class BAaVSample:
    """Per-sample record of the protocol (one row per scored image-audio pair)."""

    iou_fixed: float  # NaN already turned into 0, as eval.py
    iou_adaptive: float  # may be NaN (empty GT and empty adaptive mask)
    fbeta_fixed: float
    fbeta_adaptive: float
    gt_pixels: int
    adaptive_threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_sample(
    pred: np.ndarray, gt: np.ndarray, fixed_threshold: float = FIXED_THRESHOLD, index: int = 0
) -> BAaVSample:
    """Score one (probability map, prepared binary GT) pair; GT from :func:`prepare_gt`."""
    prob, gt_bool = _check_sample(pred, gt, index)
    fixed = fixed_mask(prob, fixed_threshold)
    thr = adaptive_threshold(prob, gt_bool)
    adaptive = prob > thr
    iou_fixed = sample_iou(fixed, gt_bool)
    return BAaVSample(
        iou_fixed=0.0 if math.isnan(iou_fixed) else iou_fixed,
        iou_adaptive=sample_iou(adaptive, gt_bool),
        fbeta_fixed=sample_fbeta(fixed, gt_bool),
        fbeta_adaptive=sample_fbeta(adaptive, gt_bool),
        gt_pixels=int(np.count_nonzero(gt_bool)),
        adaptive_threshold=float(thr),
    )


# --------------------------------------------------------------------------- sample lists


def auc_thresholds() -> list[float]:
    """IoU thresholds of the AUC, built as eval.py's ``[0.05 * i for i in range(21)]``."""
    return [0.05 * i for i in range(AUC_STEPS)]


def success_rates(ious: Sequence[float]) -> list[float]:
    """Share of samples with IoU >= t per AUC threshold (NaN is never >= t)."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no IoU values")
    return [float(np.sum(values >= t) / len(values)) for t in auc_thresholds()]


def auc_from_ious(ious: Sequence[float]) -> float:
    """Trapezoid area under (t, success rate), as ``sklearn.metrics.auc`` computes it."""
    xs = np.asarray(auc_thresholds(), dtype=np.float64)
    ys = np.asarray(success_rates(ious), dtype=np.float64)
    return float(np.add.reduce(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))


def ciou_from_ious(ious: Sequence[float], iou_threshold: float = CIOU_IOU_THRESHOLD) -> float:
    """Share of samples with IoU >= ``iou_threshold`` (NaN counts as a miss)."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no IoU values")
    return float(np.sum(values >= iou_threshold) / len(values))


def summarize(
    samples: Iterable[BAaVSample], fixed_threshold: float = FIXED_THRESHOLD
) -> dict[str, Any]:
    """Protocol scores of a sample list, each under the name of what it is.

    Besides the descriptive keys, ``ciou``, ``auc``, ``miou``, ``fscore``, ``j`` and
    ``f`` hold the paper's columns (:data:`PAPER_COLUMNS`), the keys the
    ``zeroshot-sslalign`` protocol also fills.
    """
    rows = list(samples)
    if not rows:
        raise ValueError("no samples to score")
    adaptive = [r.iou_adaptive for r in rows]
    fixed = [r.iou_fixed for r in rows]
    scores: dict[str, Any] = {
        "ciou_adaptive": ciou_from_ious(adaptive),
        "auc_adaptive": auc_from_ious(adaptive),
        "mean_iou_adaptive": float(np.mean(adaptive)),
        "mean_fbeta_adaptive": float(np.mean([r.fbeta_adaptive for r in rows])),
        "mean_iou_fixed": float(np.mean(fixed)),
        "mean_fbeta_fixed": float(np.mean([r.fbeta_fixed for r in rows])),
        "ciou_fixed": ciou_from_ious(fixed),
        "auc_fixed": auc_from_ious(fixed),
    }
    scores.update({short: scores[long] for short, long in _SHORT_KEYS.items()})
    scores.update(
        {
            "fixed_threshold": float(fixed_threshold),
            "n_samples": len(rows),
            "n_empty_gt": sum(1 for r in rows if r.gt_pixels == 0),
            "n_adaptive_iou_nan": sum(1 for r in adaptive if math.isnan(r)),
            "fscore_variant": "baav-single-mask",
            "batch_size": None,
            "n_frames": len(rows),
        }
    )
    return scores


def score_baav(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    fixed_threshold: float = FIXED_THRESHOLD,
) -> dict[str, Any]:
    """All protocol scores of (probability map, prepared binary GT) samples, in list order."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} GT masks")
    if not 0.0 <= fixed_threshold <= 1.0:
        raise ValueError(f"fixed_threshold must lie in [0, 1], got {fixed_threshold}")
    samples = (score_sample(preds[i], gts[i], fixed_threshold, index=i) for i in range(len(preds)))
    return summarize(samples, fixed_threshold)
