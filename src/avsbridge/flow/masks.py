"""SSP's flow masks (Yin et al., SSP §4.1 Eq. 1-2 and Fig. 4) as pure array functions.

What the paper fixes and what it leaves open, and what we choose:

* Grayscale. "We convert O^{T-1} into grayscale images": which grayscale is not
  said. Ours is the per-pixel flow MAGNITUDE in pixels (|(u, v)|), the quantity
  the Middlebury colour code shows as saturation; no per-image normalisation, so a
  static clip stays dark instead of having its noise stretched to full range. The
  8-bit ``gray`` PNG divides by the frame's largest magnitude (recorded in the
  shard summary) only for viewing.
* Eq. 1 indices. Printed, it stacks O^1, T-1 means and O^T: T+1 maps out of T-1
  flows. We read it the only way that gives one map per frame: frame 1 = flow
  1->2, frame t (1 < t < T) = Mean(flow t-1->t, flow t->t+1), frame T = flow
  T-1->T. The mean is over the grayscale maps (the paper converts first), not
  over vectors (opposite motions would cancel).
* Binarisation. "Blank areas 0, regions containing information 1": no threshold
  is given. :class:`BinarizeRule` makes it a parameter (``params.yaml``
  ``flow.binarize``). The default is ``otsu`` floored at 1.0 px: Otsu's threshold
  on the frame's 8-bit grayscale (the classical "blank vs. content" split of a
  grey image, adaptive like the paper's per-image flow visualisation), never
  below one pixel of motion so a static frame's estimator noise stays blank. A
  fixed pixel threshold fails under camera motion: on six demo S4 clips (camera
  pan up to 6 px/frame, DIS) ``fixed`` 1 px marks 29-100 % (mostly > 80 %) of the
  non-sounding pixels, Otsu 12-37 % (largely the other, silent moving objects)
  while keeping >= 97 % of the sounding object in 9 of 11 frames.
  ``fixed`` (px) and ``relative`` (fraction of the frame's maximum) are the
  alternatives.
* Eq. 2. The third case as printed ("0 where (M_O n M_GT) = 0") overlaps the
  second; we take it as the remaining pixels (in neither mask), which is what
  the text says ("0 represents the background").
* M_GT is the frame's binary ground truth (AVSS colour labels: any class > 0).
  It is used only on training splits (SSP: "utilized during training and
  excluded in testing"): :func:`read_training_gt` refuses any other split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_image

BINARIZE_METHODS = ("fixed", "relative", "otsu")


class GroundTruthOnTestSplitError(ArtifactError):
    """A flow job asked for ground truth of a clip that is not on a training split."""


@dataclass(frozen=True)
class BinarizeRule:
    """How O^T (magnitudes in px) becomes the binary M_O: ``method`` and its ``threshold``.

    fixed:    o > threshold (px).
    relative: o > threshold * max(o), threshold in (0, 1); an all-static frame is empty.
    otsu:     o > max(Otsu threshold of the 8-bit grayscale, threshold px).
    """

    method: str = "otsu"
    threshold: float = 1.0

    @classmethod
    def from_params(cls, spec: dict[str, Any] | None) -> BinarizeRule:
        spec = dict(spec or {})
        unknown = set(spec) - {"method", "threshold"}
        if unknown:
            raise ValueError(f"flow.binarize: unknown keys {sorted(unknown)} (method, threshold)")
        rule = cls(str(spec.get("method", cls.method)), float(spec.get("threshold", cls.threshold)))
        if rule.method not in BINARIZE_METHODS:
            raise ValueError(
                f"flow.binarize.method {rule.method!r} not one of {', '.join(BINARIZE_METHODS)}"
            )
        if rule.threshold < 0 or (rule.method == "relative" and not 0 < rule.threshold < 1):
            raise ValueError(
                f"flow.binarize.threshold {rule.threshold} out of range for {rule.method}"
            )
        return rule

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "threshold": self.threshold}


def magnitude(flow: np.ndarray) -> np.ndarray:
    """HxW float32 |(u, v)| of an HxWx2 field: the grayscale of a flow (module docstring)."""
    field = np.asarray(flow, dtype=np.float64)
    return np.sqrt(np.square(field[..., 0]) + np.square(field[..., 1])).astype(np.float32)


def stack_eq1(gray_pairs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """SSP Eq. 1: T-1 per-pair grayscale maps -> T per-frame maps O^T (first, means, last)."""
    maps = [np.asarray(g, dtype=np.float32) for g in gray_pairs]
    if not maps:
        raise ValueError("Eq. 1 needs at least one frame pair (a clip of >= 2 frames)")
    if any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"Eq. 1 maps differ in size: {sorted({m.shape for m in maps})}")
    middle = [(maps[t - 1] + maps[t]) / 2.0 for t in range(1, len(maps))]
    return [maps[0], *middle, maps[-1]]


def gray_u8(o: np.ndarray) -> np.ndarray:
    """8-bit view of a magnitude map: o / max(o) * 255 (all zero for a static frame)."""
    peak = float(np.max(o)) if o.size else 0.0
    if peak <= 0.0:
        return np.zeros(o.shape, dtype=np.uint8)
    return np.round(np.clip(o / peak, 0.0, 1.0) * 255.0).astype(np.uint8)


def _otsu_u8(gray: np.ndarray) -> int:
    """Otsu's threshold of an 8-bit image (between-class variance maximiser)."""
    hist = np.bincount(gray.reshape(-1), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    levels = np.arange(256, dtype=np.float64)
    weight0 = np.cumsum(hist)
    mean0 = np.cumsum(hist * levels)
    weight1 = total - weight0
    mu_total = mean0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_total * weight0 - mean0 * total) ** 2 / (weight0 * weight1)
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def binarize(o: np.ndarray, rule: BinarizeRule) -> np.ndarray:
    """M_O: bool HxW, True where the frame's O^T holds motion under ``rule``."""
    o = np.asarray(o, dtype=np.float32)
    peak = float(np.max(o)) if o.size else 0.0
    if rule.method == "fixed":
        return o > rule.threshold
    if rule.method == "relative":
        return o > rule.threshold * peak if peak > 0 else np.zeros(o.shape, dtype=bool)
    if peak <= 0.0:
        return np.zeros(o.shape, dtype=bool)
    level = _otsu_u8(gray_u8(o)) / 255.0 * peak
    return o > max(level, rule.threshold)


def pre_mask(m_o: np.ndarray, m_gt: np.ndarray) -> np.ndarray:
    """SSP Eq. 2: 1 on M_O n M_GT, 0.5 on (M_O u M_GT) - (M_O n M_GT), 0 elsewhere."""
    m_o, m_gt = _same_shape(m_o, m_gt)
    out = np.zeros(m_o.shape, dtype=np.float32)
    out[m_o ^ m_gt] = 0.5
    out[m_o & m_gt] = 1.0
    return out


def post_mask(m_o: np.ndarray, m_gt: np.ndarray) -> np.ndarray:
    """SSP Fig. 4: the post-mask target M_Post = M_O n M_GT (bool)."""
    m_o, m_gt = _same_shape(m_o, m_gt)
    return m_o & m_gt


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"M_O {a.shape} and M_GT {b.shape} differ in size")
    return a, b


# --- ground truth (training splits only) ------------------------------------------------


def is_training_split(split: str) -> bool:
    """train, or a V3 training split (``meta_v3_seen_train``, ``v3_1_shot/train``)."""
    return split.replace("/", "_").rsplit("_", 1)[-1] == "train"


def read_gt_foreground(path: os.PathLike[str] | str) -> np.ndarray:
    """Binary M_GT of a mask PNG: palette labels > 0 (AVSS), else grey > 127 (S4/MS3)."""
    raw = read_image(path, mode="keep")
    if raw.ndim == 2 and _is_palette(path):
        return raw > 0
    return read_image(path, mode="L") > 127


def _is_palette(path: os.PathLike[str] | str) -> bool:
    from PIL import Image

    with Image.open(path) as img:
        return img.mode == "P"


def read_training_gt(clip: Clip, frame: int) -> np.ndarray:
    """M_GT of 1-based ``frame`` of a TRAINING clip; any other split is refused."""
    if not is_training_split(clip.split):
        raise GroundTruthOnTestSplitError(
            clip.masks[frame - 1] or clip.frames[frame - 1],
            f"clip {clip.id!r} is on split {clip.split!r}: SSP uses M_GT only on training "
            "splits (M_Pre / post-mask are training targets), never on val/test",
        )
    path = clip.masks[frame - 1]
    if path is None:
        raise ArtifactError(clip.frames[frame - 1], f"frame {frame} of {clip.id!r} has no GT mask")
    return read_gt_foreground(Path(path))
