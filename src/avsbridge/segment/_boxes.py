"""Box and mask helpers shared by the paper-profile VFM pairs (GroundingDINO + SAM/SAM2).

The three backends (``gdino-sam``, ``gdino-sam2``, ``hf-gdino-sam``) differ only in
which libraries run the detector and the segmenter; the caption they send to
GroundingDINO, the way boxes become pixels and masks become one union, and the
way weight files are found and fingerprinted are the same, so they live here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge import weights
from avsbridge.io import ArtifactError, sha256_file
from avsbridge.segment.base import Detection


def gdino_caption(phrases: Sequence[str]) -> str:
    """GroundingDINO's caption form: lowercase phrases joined by " . ", ending in " .".

    GroundingDINO was trained on captions where category names are separated by
    dots; its sub-sentence attention masks split on the "." token, so each phrase
    is grounded on its own.
    """
    cleaned = [" ".join(p.lower().replace(".", " ").split()) for p in phrases]
    cleaned = [p for p in cleaned if p]
    if not cleaned:
        return ""
    return " . ".join(cleaned) + " ."


SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")


def clean_phrase(text: str) -> str:
    """A detected phrase without caption dots or BERT special tokens, single-spaced.

    Both GroundingDINO implementations decode the caption tokens above the text
    threshold; groundingdino-py then drops the dots, transformers keeps them, and
    either may include [CLS]/[SEP] when their scores pass. Boxes JSON wants the
    object words only, the same for every backend.
    """
    words = text.replace(".", " ").split()
    return " ".join(w for w in words if w not in SPECIAL_TOKENS)


def check_thresholds(box_threshold: float, text_threshold: float) -> None:
    """Thresholds are probabilities; anything outside [0, 1] is a config bug."""
    for name, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


def cxcywh_norm_to_xyxy_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (cx, cy, w, h) boxes -> pixel (x0, y0, x1, y1), clipped to the image."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy, bw, bh = boxes.T
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    xyxy *= np.array([width, height, width, height], dtype=np.float64)
    return clip_boxes(xyxy, width, height)


def clip_boxes(boxes_xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip pixel boxes to the frame so SAM never gets a prompt outside the image."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(width))
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(height))
    return boxes


def to_detections(
    boxes_xyxy: np.ndarray, scores: Sequence[float], phrases: Sequence[str]
) -> list[Detection]:
    """Pair pixel boxes with their scores and phrases as :class:`Detection` records."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) == len(scores) == len(phrases):
        raise ValueError(
            f"boxes ({len(boxes)}), scores ({len(scores)}) and phrases ({len(phrases)}) differ"
        )
    return [
        Detection(
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            score=float(s),
            phrase=" ".join(str(p).split()),
        )
        for b, s, p in zip(boxes, scores, phrases, strict=True)
    ]


def union_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Union of per-box masks (N x [1 x] H x W, bool or 0/1) as a float32 HxW map in {0, 1}.

    Grounded-SAM segments every detected box; the sounding-object mask of the
    frame is the union of them (zero boxes -> an all-zero mask).
    """
    arr = np.asarray(masks)
    if arr.size == 0:
        return np.zeros((height, width), dtype=np.float32)
    arr = arr.reshape(-1, arr.shape[-2], arr.shape[-1])
    if arr.shape[1:] != (height, width):
        raise ValueError(f"masks are {arr.shape[1:]}, expected {(height, width)}")
    return (arr > 0.5 if arr.dtype != np.bool_ else arr).any(axis=0).astype(np.float32)


class WeightFile:
    """A weight file a backend loads, with its sha256 computed at most once.

    Pinned files found by :func:`avsbridge.weights.resolve` were verified against
    their pin, so the pin is their hash; an explicit path option is hashed on the
    first :meth:`sha256` call (provenance), never on load.
    """

    def __init__(self, path: Path, source_name: str, pinned_sha256: str | None) -> None:
        self.path = path
        self.source_name = source_name
        self._sha256 = pinned_sha256

    @classmethod
    def locate(cls, override: str | os.PathLike[str] | None, source_name: str) -> WeightFile:
        """An explicit path option, else the pinned source via ``weights.resolve``.

        An override that does not exist is an :class:`ArtifactError` naming it, so
        a typo in the config never falls back silently to another file.
        """
        if override is not None:
            path = Path(override).expanduser()
            if not path.is_file():
                raise ArtifactError(path, f"checkpoint for {source_name!r} is missing")
            return cls(path, source_name, None)
        path = weights.resolve(source_name)
        return cls(path, source_name, weights.SOURCES[source_name].sha256)

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    def is_pinned(self) -> bool:
        """True when the file's hash equals the published pin (a trusted official file)."""
        pin = (
            weights.SOURCES[self.source_name].sha256
            if self.source_name in weights.SOURCES
            else None
        )
        return pin is not None and self.sha256() == pin


def detect_prompt(
    detect: Callable[..., tuple[Any, Any, list[str]]],
    image: np.ndarray,
    prompt: str,
    box_threshold: float,
    text_threshold: float,
) -> tuple[Any, Any, list[str]] | None:
    """Shared prologue of the GroundingDINO backends: check, split, detect.

    None means there is nothing to segment (silence, or no box above threshold).
    """
    from avsbridge.segment.base import check_image, split_prompt

    check_image(image)
    check_thresholds(box_threshold, text_threshold)
    phrases = split_prompt(prompt)
    if not phrases:
        return None
    boxes, scores, found = detect(image, phrases, box_threshold, text_threshold)
    if len(boxes) == 0:
        return None
    return boxes, scores, found
