"""COCO-SSD (SSD MobileNet v1, TFLite, pinned by sha256): the demo stand-ins' one detector.

Several demo stand-ins word its detections differently (a BAaV "caption", a TeSO scene
sentence, SSP's A1); loading, labels and inference live here once, each stand-in keeps
its own filtering and wording.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge import weights
from avsbridge.io import ArtifactError, sha256_file

UNKNOWN_LABEL = "???"


def read_labelmap(model_path: Path) -> list[str]:
    """COCO label names embedded in the .tflite (it is also a zip holding labelmap.txt)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            return archive.read("labelmap.txt").decode("utf-8").splitlines()
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ArtifactError(model_path, f"no embedded labelmap.txt ({exc})") from None


class CocoSsd:
    """The model file (the pinned mirror copy, or ``model_path``), its labels, lazy interpreter."""

    def __init__(self, model_path: str | None = None) -> None:
        if model_path is None:
            self.model_path = weights.resolve("coco-ssd")
            self.weights_sha256 = weights.sha256_of("coco-ssd")
        else:
            self.model_path = Path(model_path)
            if not self.model_path.is_file():
                raise ArtifactError(self.model_path, "COCO-SSD model is missing")
            self.weights_sha256 = sha256_file(self.model_path)
        self.labels = read_labelmap(self.model_path)
        self._interpreter: Any = None

    def _load(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from avsbridge.audio_text.yamnet import quiet_litert_info

        try:
            with quiet_litert_info():
                self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=1)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(self.model_path, f"LiteRT cannot load the model ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()

    def label(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else UNKNOWN_LABEL

    def raw(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """(normalised box, label, score) of every output detection of one RGB frame, best first."""
        from PIL import Image

        if self._interpreter is None:
            self._load()
        _, height, width, _ = self._input["shape"]
        resized = np.asarray(
            Image.fromarray(image).convert("RGB").resize((int(width), int(height)))
        )
        self._interpreter.set_tensor(
            self._input["index"], resized[None].astype(self._input["dtype"])
        )
        self._interpreter.invoke()
        boxes, classes, scores = (
            np.asarray(self._interpreter.get_tensor(o["index"])) for o in self._outputs[:3]
        )
        found = [
            (box, self.label(int(cls)), float(score))
            for box, cls, score in zip(
                boxes.reshape(-1, 4), classes.reshape(-1), scores.reshape(-1), strict=True
            )
        ]
        return sorted(found, key=lambda t: -t[2])
