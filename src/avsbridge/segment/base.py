"""The one interface every text-prompted segmenter (VFM stage) implements.

The stage runner (:mod:`avsbridge.segment.run`) only talks to this interface, so a
new VFM pair (GroundingDINO + SAM, + SAM2, a transformers pair, the demo matcher)
is one new module plus one ``@SEGMENTERS.register("name")`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class Detection:
    """One kept box: pixel ``xyxy`` coordinates, its score, and the phrase it answers."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    phrase: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form written into the per-clip ``boxes.json`` (one entry per frame)."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "phrase": self.phrase,
        }


@dataclass
class SegResult:
    """A frame's mask (float32 HxW in [0, 1], probability or binary) and its boxes."""

    mask: np.ndarray
    detections: list[Detection] = field(default_factory=list)


@runtime_checkable
class Segmenter(Protocol):
    """Text prompt + RGB frame -> mask of the named objects (union over phrases)."""

    name: str

    def identity(self) -> dict[str, Any]:
        """What produced the masks: backend, model ids, weight sha256s, thresholds."""
        ...

    def segment(
        self, image: np.ndarray, prompt: str, box_threshold: float, text_threshold: float
    ) -> SegResult:
        """Segment ``prompt``'s objects in ``image`` (HxWx3 uint8 RGB)."""
        ...


def split_prompt(prompt: str) -> list[str]:
    """Object phrases of a prompt: comma-separated, trimmed, empties dropped.

    The translation stage writes "dog, man" for two sounding objects and "" for
    silence; every backend splits the same way so their unions agree.
    """
    phrases: list[str] = []
    for part in prompt.replace(";", ",").split(","):
        phrase = " ".join(part.strip().strip(".").split())
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return phrases


def empty_result(image: np.ndarray) -> SegResult:
    """The result for silence / nothing found: an all-zero mask, no boxes."""
    height, width = image.shape[:2]
    return SegResult(mask=np.zeros((height, width), dtype=np.float32), detections=[])


def check_image(image: np.ndarray) -> None:
    """Reject frames that are not HxWx3 uint8 (a caller bug, not bad data)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"segment wants an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
