"""``coco-ssd``: COCO-SSD detections worded as a caption, standing in for BLIP.

BAaV captions the image with BLIP and takes spaCy noun chunks of the caption as the
candidate objects. The demo stand-in detects COCO objects (SSD MobileNet v1, TFLite,
pinned by sha256 in :mod:`avsbridge.weights`) and words the distinct labels above the
score threshold as "a dog and a person" -- the same kind of string, so the
noun-phrase and matching steps downstream run unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends.coco_ssd import UNKNOWN_LABEL, CocoSsd
from avsbridge.io import read_image
from avsbridge.zeroshot_image import IMAGE_CAPTIONERS


def caption_from_labels(labels: list[str]) -> str:
    """ "a dog and a person" (distinct labels in detection order; "" for none).

    No "a photo of" prefix: spaCy would return "a photo" as a candidate noun phrase."""
    names = list(dict.fromkeys(labels))
    if not names:
        return ""
    phrases = [f"{'an' if n[0] in 'aeiou' else 'a'} {n}" for n in names]
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return joined


class CocoSsdCaptioner:
    """SSD MobileNet v1 (COCO) labels above ``score_threshold`` as a caption string."""

    name = "coco-ssd"

    def __init__(
        self, score_threshold: float = 0.3, max_objects: int = 5, model_path: str | None = None
    ) -> None:
        self.model = CocoSsd(model_path)
        self.model_path, self.weights_sha256 = self.model.model_path, self.model.weights_sha256
        self.score_threshold = float(score_threshold)
        self.max_objects = int(max_objects)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_path.name,
            "weights_sha256": self.weights_sha256,
            "score_threshold": self.score_threshold,
            "max_objects": self.max_objects,
            "stands_in_for": "BLIP image captioning (labels worded as a caption)",
        }

    def detect(self, image: np.ndarray) -> list[tuple[str, float]]:
        """(label, score) of the kept detections, best first."""
        found = [
            (label, score)
            for _box, label, score in self.model.raw(image)
            if score >= self.score_threshold and label != UNKNOWN_LABEL
        ]
        return found[: self.max_objects]

    def caption(self, image_path: Path) -> dict[str, Any]:
        found = self.detect(read_image(image_path, mode="RGB"))
        return {
            "caption": caption_from_labels([label for label, _ in found]),
            "detections": [{"label": label, "score": round(s, 4)} for label, s in found],
        }


IMAGE_CAPTIONERS.register("coco-ssd", mem_mb=600)(CocoSsdCaptioner)
