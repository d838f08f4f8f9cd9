"""AVSBench-object (S4 / MS3) metrics: mIoU and F-score, as the official test code.

Written from the formulas of the official AVSBench test code (``mask_iou``,
``_eval_pr``, ``Eval_Fmeasure`` in ``avs_scripts/avs_s4/utils/utility.py`` and the
``AverageMeter`` loop of ``test.py``). Facts checked there and reproduced here:

* mIoU binarises the prediction with ``p > 0.5`` (strict). A frame whose GT is empty
  scores the fraction of pixels the prediction correctly leaves as background
  (intersection of the two backgrounds over all pixels). Per batch the official code
  averages frame IoUs (``sum / N``) and then averages the batch values with equal
  weight, so the last, shorter batch is over-weighted; with ``batch_size=None`` the
  mean runs over frames.
* F-score (beta^2 = 0.3) sweeps 255 thresholds ``linspace(0, 1 - 1e-10, 255)`` in
  float32 (so the last threshold is exactly 1.0) with ``p >= t``; frames with an
  all-zero GT are skipped; per batch the F curves of the kept frames are averaged and
  the maximum over thresholds is the batch value; batch values are averaged. A batch
  whose frames all have empty GT scores 0.0 and still counts in the average (the
  official ``score`` stays ``zeros(255)``).
* The official ``test_batch_size`` is 4 *clips*; every clip has 5 frames, so one
  official batch holds 20 frames. Here ``batch_size`` counts frames: pass
  ``OFFICIAL_BATCH_FRAMES`` to reproduce the published numbers.

Inputs are probability maps in [0, 1] (the official code applies a sigmoid to logits
first; callers pass probabilities) and binary GT masks. Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

F_BETA2 = 0.3
N_THRESHOLDS = 255
DEFAULT_BATCH_SIZE = 4
OFFICIAL_BATCH_FRAMES = 20  # official test_batch_size 4 clips x 5 frames per clip
FSCORE_VARIANTS = ("official", "pooled")


def check_frame(pred: np.ndarray, gt: np.ndarray, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (prediction, GT) pair; return (float32 probabilities, bool GT).

    Raises ValueError naming the frame index so callers that know file names can
    re-raise with them.
    """
    pred_arr = np.asarray(pred)
    gt_arr = np.asarray(gt)
    if pred_arr.ndim != 2 or gt_arr.ndim != 2:
        raise ValueError(
            f"frame {index}: expected 2-D maps, got prediction {pred_arr.shape} and GT {gt_arr.shape}"
        )
    if pred_arr.shape != gt_arr.shape:
        raise ValueError(
            f"frame {index}: prediction size {pred_arr.shape} differs from GT size {gt_arr.shape}"
        )
    prob = pred_arr.astype(np.float32)
    if not np.all(np.isfinite(prob)):
        raise ValueError(f"frame {index}: prediction holds NaN or infinite values")
    if prob.size and (prob.min() < 0.0 or prob.max() > 1.0):
        raise ValueError(f"frame {index}: prediction values outside [0, 1]")
    return prob, gt_arr.astype(bool)


def iter_checked_frames(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    frame_names: Sequence[str] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Checked frames one at a time, so long test sets never sit in memory as float32.

    ``frame_names[i]`` (e.g. ``GT_FILE (clip X, frame 3)``) replaces ``frame i`` in errors.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} GT masks")
    if len(preds) == 0:
        raise ValueError("no frames to score")
    if frame_names is not None and len(frame_names) != len(preds):
        raise ValueError(f"{len(frame_names)} frame names for {len(preds)} frames")
    for index in range(len(preds)):
        try:
            yield check_frame(preds[index], gts[index], index)
        except ValueError as exc:
            if frame_names is None:
                raise
            problem = str(exc).removeprefix(f"frame {index}: ")
            raise ValueError(f"{frame_names[index]}: {problem}") from None


def _batches(n_frames: int, batch_size: int) -> list[range]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [
        range(start, min(start + batch_size, n_frames)) for start in range(0, n_frames, batch_size)
    ]


def checked_frame_iou(prob: np.ndarray, gt: np.ndarray) -> float:
    """Frame IoU of an already checked pair (float32 probabilities, bool GT)."""
    fg = prob > 0.5
    if not gt.any():
        # Official: intersection of backgrounds over all pixels.
        return float(np.count_nonzero(~fg)) / float(gt.size)
    inter = np.count_nonzero(fg & gt)
    union = np.count_nonzero(fg | gt)  # > 0 because GT is not empty
    return float(inter) / float(union)


def frame_miou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one frame with ``pred > 0.5``; empty GT -> fraction of pixels left background."""
    prob, gt_bool = check_frame(pred, gt)
    return checked_frame_iou(prob, gt_bool)


def _mean_iou(ious: np.ndarray, batch_size: int | None) -> float:
    if batch_size is None:
        return float(ious.mean())
    return float(np.mean([ious[list(b)].mean() for b in _batches(len(ious), batch_size)]))


def miou(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], batch_size: int | None = None
) -> float:
    """Mean frame IoU; with ``batch_size`` the mean of per-batch means, as the official loop.

    The two agree whenever the frame count is a multiple of ``batch_size``.
    """
    ious = np.array(
        [checked_frame_iou(p, g) for p, g in iter_checked_frames(preds, gts)], dtype=np.float64
    )
    return _mean_iou(ious, batch_size)


def pr_thresholds(n_thresholds: int = N_THRESHOLDS) -> np.ndarray:
    """The official sweep ``linspace(0, 1 - 1e-10, n)`` in float32 (last value rounds to 1.0).

    numpy and torch may round up to a few thresholds one float32 step apart; that can
    only matter for a prediction lying exactly on a threshold, which no 8-bit PNG
    value (v / 255) does.
    """
    if n_thresholds < 2:
        raise ValueError(f"n_thresholds must be >= 2, got {n_thresholds}")
    return np.linspace(0.0, 1.0 - 1e-10, n_thresholds).astype(np.float32)


def checked_fscore_curve(
    prob: np.ndarray, gt: np.ndarray, beta2: float, n_thresholds: int
) -> np.ndarray:
    """F curve of an already checked pair; see :func:`frame_fscore_curve`."""
    thresholds = pr_thresholds(n_thresholds)
    n_passed = np.searchsorted(thresholds, prob.ravel(), side="right")
    # positives[i] = #pixels passing threshold i = #pixels with n_passed > i.
    hist_all = np.bincount(n_passed, minlength=n_thresholds + 1)
    hist_gt = np.bincount(n_passed[gt.ravel()], minlength=n_thresholds + 1)
    positives = np.cumsum(hist_all[::-1])[::-1][1:].astype(np.float64)
    true_pos = np.cumsum(hist_gt[::-1])[::-1][1:].astype(np.float64)
    precision = true_pos / (positives + 1e-20)
    recall = true_pos / (float(np.count_nonzero(gt)) + 1e-20)
    with np.errstate(invalid="ignore", divide="ignore"):
        fscore = (1.0 + beta2) * precision * recall / (beta2 * precision + recall)
    return np.nan_to_num(fscore, nan=0.0)


def frame_fscore_curve(
    pred: np.ndarray, gt: np.ndarray, beta2: float = F_BETA2, n_thresholds: int = N_THRESHOLDS
) -> np.ndarray:
    """F_beta at each threshold of :func:`pr_thresholds` for one frame (``p >= t``).

    Counts come from one sorted search instead of 255 passes: a pixel is positive
    at threshold i exactly when i < (number of thresholds <= its value).
    Precision/recall carry the official ``1e-20`` guards; 0/0 F values become 0.
    """
    prob, gt_bool = check_frame(pred, gt)
    return checked_fscore_curve(prob, gt_bool, beta2, n_thresholds)


@dataclass
class _FrameStats:
    """Per-frame IoU and F curve (None where the GT is empty), gathered in one pass."""

    ious: np.ndarray
    curves: list[np.ndarray | None]

    @property
    def n_empty_gt(self) -> int:
        return sum(1 for c in self.curves if c is None)


def _frame_stats(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    beta2: float,
    n_thresholds: int,
    frame_names: Sequence[str] | None = None,
) -> _FrameStats:
    ious: list[float] = []
    curves: list[np.ndarray | None] = []
    for prob, gt in iter_checked_frames(preds, gts, frame_names):
        ious.append(checked_frame_iou(prob, gt))
        curves.append(checked_fscore_curve(prob, gt, beta2, n_thresholds) if gt.any() else None)
    return _FrameStats(np.asarray(ious, dtype=np.float64), curves)


def _batched_f(curves: list[np.ndarray | None], batch_size: int) -> float:
    batch_values = []
    for batch in _batches(len(curves), batch_size):
        kept = [curves[i] for i in batch if curves[i] is not None]
        batch_values.append(float(np.mean(kept, axis=0).max()) if kept else 0.0)
    return float(np.mean(batch_values))


def _pooled_f(curves: list[np.ndarray | None]) -> float:
    kept = [c for c in curves if c is not None]
    return float(np.mean(kept, axis=0).max()) if kept else 0.0


def fscore_official(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    batch_size: int = DEFAULT_BATCH_SIZE,
    beta2: float = F_BETA2,
    n_thresholds: int = N_THRESHOLDS,
) -> float:
    """Official batched F: max over thresholds per batch of ``batch_size`` frames, then mean.

    Batches are consecutive frames in the given order; an all-empty-GT batch counts 0.0.
    """
    _batches(1, batch_size)  # validate before the expensive pass
    return _batched_f(_frame_stats(preds, gts, beta2, n_thresholds).curves, batch_size)


def fscore_pooled(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    beta2: float = F_BETA2,
    n_thresholds: int = N_THRESHOLDS,
) -> float:
    """Batch-independent F: mean curve over all non-empty-GT frames, then max (0.0 if none)."""
    return _pooled_f(_frame_stats(preds, gts, beta2, n_thresholds).curves)


@dataclass(frozen=True)
class AVSBenchScores:
    """One AVSBench-object result; says which F variant and batch size produced it."""

    miou: float
    fscore: float
    fscore_variant: str
    batch_size: int | None
    n_frames: int
    n_empty_gt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_avsbench(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    variant: str = "official",
    batch_size: int = DEFAULT_BATCH_SIZE,
    frame_names: Sequence[str] | None = None,
) -> AVSBenchScores:
    """mIoU and F of a frame list in one pass over the frames.

    ``official``: batched F and batch-averaged mIoU (``batch_size`` frames per batch).
    ``pooled``: F from the mean curve of all frames and mIoU over frames; no batch size.
    ``frame_names`` name the frames in errors (file, clip, frame) instead of an index.
    """
    if variant not in FSCORE_VARIANTS:
        raise ValueError(f"unknown F-score variant {variant!r}; use one of {FSCORE_VARIANTS}")
    if variant == "official":
        _batches(1, batch_size)
    stats = _frame_stats(preds, gts, F_BETA2, N_THRESHOLDS, frame_names)
    if variant == "official":
        return AVSBenchScores(
            miou=_mean_iou(stats.ious, batch_size),
            fscore=_batched_f(stats.curves, batch_size),
            fscore_variant="official",
            batch_size=batch_size,
            n_frames=len(stats.ious),
            n_empty_gt=stats.n_empty_gt,
        )
    return AVSBenchScores(
        miou=_mean_iou(stats.ious, None),
        fscore=_pooled_f(stats.curves),
        fscore_variant="pooled",
        batch_size=None,
        n_frames=len(stats.ious),
        n_empty_gt=stats.n_empty_gt,
    )
