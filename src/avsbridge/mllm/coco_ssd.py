"""Demo stand-ins, honestly named: COCO-SSD detections rendered into sentences.

``coco-ssd`` (scene_description) stands in for LLaVA-1.5's dense caption: the COCO
objects SSD MobileNet v1 finds in the frame (TFLite via ai-edge-litert, weights pinned
by sha256 in :mod:`avsbridge.weights`) worded as one sentence with coarse locations.
``coco-ssd-smollm2`` (mllm_answers) stands in for MiniCPM-o-2.6: A1 is the detections
of the clip's frames worded as a sentence (with locations when Q1 asks for them; the
detector knows no verbs or characteristics, so Fig. 7's format requests cannot be
met), A2 is SmolLM2-135M (the demo translator, :mod:`avsbridge.translate.local_backend`)
answering Q2 from A1 alone -- a text model never sees the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avsbridge.backends.coco_ssd import UNKNOWN_LABEL, CocoSsd
from avsbridge.mllm import MLLM_ANSWERERS, SCENE_DESCRIBERS
from avsbridge.mllm.base import Completion, Turn, check_turns
from avsbridge.translate.cache import FREE

Q2_SYSTEM = (
    "You read a description of a video (Answer1) and answer the question with object "
    "nouns only, comma-separated."
)


def _article(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def location_words(box: Sequence[float]) -> str:
    """'at the top left', 'in the center'... of a normalised [ymin, xmin, ymax, xmax] box."""
    ymin, xmin, ymax, xmax = box
    cy, cx = (ymin + ymax) / 2, (xmin + xmax) / 2
    row = "top" if cy < 1 / 3 else ("bottom" if cy > 2 / 3 else "")
    col = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "")
    if not row and not col:
        return "in the center"
    return "at the " + " ".join(w for w in (row, col) if w)


def render_sentence(detections: Sequence[dict[str, Any]], locations: bool, subject: str) -> str:
    """Detections worded as one sentence; none found is said, never an empty string."""
    if not detections:
        return f"No object is detected in the {subject}."
    parts = [
        _article(d["label"]) + (f" {location_words(d['box'])}" if locations else "")
        for d in detections
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"The {subject} shows {listed}."


class CocoSsdDetector:
    """SSD MobileNet v1 (COCO): labels, scores and boxes above ``score_threshold``."""

    def __init__(
        self, model_path: str | None = None, score_threshold: float = 0.4, max_objects: int = 5
    ) -> None:
        self.model = CocoSsd(model_path)
        self.model_path, self.weights_sha256 = self.model.model_path, self.model.weights_sha256
        self.score_threshold = float(score_threshold)
        self.max_objects = int(max_objects)

    def identity(self) -> dict[str, Any]:
        return {
            "model": self.model_path.name,
            "weights_sha256": self.weights_sha256,
            "score_threshold": self.score_threshold,
            "max_objects": self.max_objects,
        }

    def detect(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Kept detections of one RGB frame, best first: label, score, normalised box."""
        found: list[dict[str, Any]] = []
        for box, label, score in self.model.raw(image):
            if score < self.score_threshold or label == UNKNOWN_LABEL:
                continue
            if any(d["label"] == label for d in found):  # one mention per object class
                continue
            found.append(
                {
                    "label": label,
                    "score": round(score, 4),
                    "box": [round(float(v), 4) for v in np.clip(box, 0.0, 1.0)],
                }
            )
        return found[: self.max_objects]

    def detect_clip(self, images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Union over frames: each label once, at its best-scoring detection."""
        best: dict[str, dict[str, Any]] = {}
        for image in images:
            for det in self.detect(image):
                if det["label"] not in best or det["score"] > best[det["label"]]["score"]:
                    best[det["label"]] = det
        ranked = sorted(best.values(), key=lambda d: -d["score"])
        return ranked[: self.max_objects]


class CocoSsdDescriber:
    """scene_description demo: one frame's detections as a description sentence."""

    name = "coco-ssd"
    max_images = 1

    def __init__(
        self, model_path: str | None = None, score_threshold: float = 0.4, max_objects: int = 5
    ) -> None:
        self.detector = CocoSsdDetector(model_path, score_threshold, max_objects)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            **self.detector.identity(),
            "text": "detections rendered as 'The image shows a X at the left ...'",
            "stands_in_for": "LLaVA-1.5 dense captioning (TeSO Section 3.2.1)",
        }

    def pricing(self, completion: Completion) -> str:
        return FREE

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion:
        import time

        check_turns(turns)
        t0 = time.monotonic()
        text = render_sentence(self.detector.detect_clip(images), locations=True, subject="image")
        return Completion(text, 0, 0, time.monotonic() - t0)


class CocoSsdSmolLM2Answerer:
    """mllm_answers demo: A1 from COCO-SSD sentences, A2 from SmolLM2 reading A1."""

    name = "coco-ssd-smollm2"

    def __init__(
        self,
        model_path: str | None = None,
        score_threshold: float = 0.4,
        max_objects: int = 5,
        max_images: int = 5,
        llm_options: dict[str, Any] | None = None,
    ) -> None:
        from avsbridge.translate import TRANSLATORS

        self.detector = CocoSsdDetector(model_path, score_threshold, max_objects)
        self.max_images = int(max_images)
        self.llm = TRANSLATORS.create("local", **(llm_options or {}))

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "detector": self.detector.identity(),
            "llm": self.llm.identity(),
            "a1": "detections of the clip's frames as a sentence (locations if Q1 asks)",
            "a2": "SmolLM2 answers Q2 from A1 (it never sees the video)",
            "stands_in_for": "MiniCPM-o-2.6 (SSP Section 4.2)",
        }

    def pricing(self, completion: Completion) -> str:
        return FREE

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion:
        import time

        check_turns(turns)
        if len(turns) == 1:  # Q1: describe
            t0 = time.monotonic()
            locations = "location" in turns[0][1].lower()
            text = render_sentence(
                self.detector.detect_clip(images), locations=locations, subject="video"
            )
            return Completion(text, 0, 0, time.monotonic() - t0)
        # Q2 (or a later question): the text model reads the earlier answers
        context = "\n".join(
            f"Answer{i // 2 + 1}: {text}"
            for i, (role, text) in enumerate(turns)
            if role == "assistant"
        )
        return self.llm.complete(Q2_SYSTEM, f"{context}\n{turns[-1][1]}")


SCENE_DESCRIBERS.register("coco-ssd", mem_mb=600)(CocoSsdDescriber)
MLLM_ANSWERERS.register("coco-ssd-smollm2", mem_mb=2500)(CocoSsdSmolLM2Answerer)
