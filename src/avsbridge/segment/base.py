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
    # what the backend's decoder needs beyond the box (the demo's matched template); never
    # written anywhere
    source: Any = field(default=None, repr=False, compare=False)

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


@runtime_checkable
class StagedSegmenter(Segmenter, Protocol):
    """A segmenter whose detector and image encoder are separate calls the runner can cache.

    The runner (:mod:`avsbridge.segment.run`) keys detections by (frame, query,
    :meth:`detector_identity`, floor) and embeddings by (frame, :meth:`encoder_identity`),
    so each expensive pass runs once per content whatever the thresholds or variants.
    ``segment`` stays the one-frame path; it must equal :func:`segment_staged`.
    """

    def detector_identity(self) -> dict[str, Any]:
        """Everything that shapes the raw candidates (models, weights, precision, settings)."""
        ...

    def detection_queries(self, prompt: str, text_threshold: float) -> list[str]:
        """The detector inputs a prompt needs (GroundingDINO: its caption; demo: objects)."""
        ...

    def raw_floor(self, box_threshold: float) -> float | None:
        """Lowest score kept in a raw entry for this threshold (None: the backend keeps all)."""
        ...

    def detect_batch(
        self, images: list[np.ndarray], queries: list[str], floor: float | None
    ) -> list[Any]:
        """Raw JSON-safe candidates of each (image, query) pair, before any threshold."""
        ...

    def select(
        self,
        image: np.ndarray,
        prompt: str,
        raw: dict[str, Any],
        box_threshold: float,
        text_threshold: float,
    ) -> list[Detection]:
        """The kept boxes of a prompt from its queries' raw candidates (``raw[query]``)."""
        ...

    def encoder_identity(self) -> dict[str, Any] | None:
        """What shapes the image features; None when the backend has no image encoder."""
        ...

    def encode_batch(self, images: list[np.ndarray]) -> list[Any]:
        """Image features of each frame (one encoder pass for the batch)."""
        ...

    def export_features(self, features: Any, storage_dtype: str) -> dict[str, tuple[str, Any]]:
        """Features as named (dtype label, numpy array) for the embedding cache."""
        ...

    def import_features(self, arrays: dict[str, tuple[str, Any]]) -> Any:
        """The inverse of :meth:`export_features`, on the backend's device and dtype."""
        ...

    def decode(self, image: np.ndarray, features: Any, detections: list[Detection]) -> np.ndarray:
        """Union mask (float32 HxW) of the detections' box prompts on precomputed features."""
        ...


def segment_staged(
    segmenter: StagedSegmenter,
    image: np.ndarray,
    prompt: str,
    box_threshold: float,
    text_threshold: float,
) -> SegResult:
    """One frame through the staged calls, no cache (what ``segment`` of a staged backend is)."""
    check_image(image)
    queries = segmenter.detection_queries(prompt, text_threshold)
    if not queries:
        return empty_result(image)
    floor = segmenter.raw_floor(box_threshold)
    raws = segmenter.detect_batch([image] * len(queries), queries, floor)
    detections = segmenter.select(
        image, prompt, dict(zip(queries, raws, strict=True)), box_threshold, text_threshold
    )
    if not detections:
        return empty_result(image)
    features = None
    if segmenter.encoder_identity() is not None:
        features = segmenter.encode_batch([image])[0]
    return SegResult(mask=segmenter.decode(image, features, detections), detections=detections)


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
