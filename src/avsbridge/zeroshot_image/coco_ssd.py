"""``coco-ssd``: COCO-SSD detections worded as a caption, standing in for BLIP.

BAaV captions the image with BLIP and takes spaCy noun chunks of the caption as the
candidate objects. The demo stand-in detects COCO objects (SSD MobileNet v1, TFLite,
pinned by sha256 in :mod:`avsbridge.weights`) and words the distinct labels above the
score threshold as "a dog and a person" -- the same kind of string, so the
noun-phrase and matching steps downstream run unchanged.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from avsbridge import weights
from avsbridge.io import ArtifactError, read_image, sha256_file
from avsbridge.zeroshot_image import IMAGE_CAPTIONERS

UNKNOWN_LABEL = "???"


def read_labelmap(model_path: Path) -> list[str]:
    """COCO label names embedded in the .tflite (it is also a zip holding labelmap.txt)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            return archive.read("labelmap.txt").decode("utf-8").splitlines()
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ArtifactError(model_path, f"no embedded labelmap.txt ({exc})") from None


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
        from ai_edge_litert.interpreter import Interpreter

        from avsbridge.audio_text.yamnet import quiet_litert_info

        if model_path is None:
            self.model_path = weights.resolve("coco-ssd")
            self.weights_sha256 = weights.sha256_of("coco-ssd")
        else:
            self.model_path = Path(model_path)
            if not self.model_path.is_file():
                raise ArtifactError(self.model_path, "COCO-SSD model is missing")
            self.weights_sha256 = sha256_file(self.model_path)
        self.labels = read_labelmap(self.model_path)
        self.score_threshold = float(score_threshold)
        self.max_objects = int(max_objects)
        with quiet_litert_info():
            self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=1)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()

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
        _, height, width, _ = self._input["shape"]
        resized = np.asarray(Image.fromarray(image).resize((int(width), int(height))))
        self._interpreter.set_tensor(
            self._input["index"], resized[None].astype(self._input["dtype"])
        )
        self._interpreter.invoke()
        out = [self._interpreter.get_tensor(o["index"]) for o in self._outputs]
        classes, scores = np.asarray(out[1]).reshape(-1), np.asarray(out[2]).reshape(-1)
        found = []
        for cls, score in sorted(zip(classes, scores, strict=True), key=lambda t: -t[1]):
            index = int(cls)
            label = self.labels[index] if 0 <= index < len(self.labels) else UNKNOWN_LABEL
            if score >= self.score_threshold and label != UNKNOWN_LABEL:
                found.append((label, float(score)))
        return found[: self.max_objects]

    def caption(self, image_path: Path) -> dict[str, Any]:
        found = self.detect(read_image(image_path, mode="RGB"))
        return {
            "caption": caption_from_labels([label for label, _ in found]),
            "detections": [{"label": label, "score": round(s, 4)} for label, s in found],
        }


IMAGE_CAPTIONERS.register("coco-ssd", mem_mb=600)(CocoSsdCaptioner)
