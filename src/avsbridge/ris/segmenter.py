"""RIS through a text-prompted segmenter of the ``segment`` stage (demo matcher, Grounded-SAM).

``demo-matcher`` is the demo's RIS stand-in: the template matcher + GrabCut of
:mod:`avsbridge.segment.demo_detector`, prompted with the query. ``grounded-sam``
runs any paper segmenter (``segmenter`` option: hf-gdino-sam by default, GroundingDINO +
SAM through transformers). Both give binary masks; the protocol's adaptive top-k
selection needs an order among pixels (a strict ``>`` on a 0/1 map selects nothing),
so the map is made graded without moving the fixed-threshold mask: inside the mask
0.5 + 0.5 * score * (distance to the border / max distance), outside 0.5 * score *
exp(-distance / 8 px), at least a faint centre prior (0.01 at the centre, 0 at the
corners: a real RIS map is never flat, and a flat map would leave the adaptive mask
undefined) -- above 0.5 exactly on the segmenter's mask. The query's
"A photo of" wording is removed before prompting (a detector wants the noun).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from avsbridge.ris import RIS_MODELS

OUTSIDE_DECAY_PX = 8.0
CENTRE_PRIOR = 0.01
QUERY_PREFIXES = ("a photo of ", "an image of ")


def prompt_of(query: str) -> str:
    text = " ".join(query.strip().split())
    for prefix in QUERY_PREFIXES:
        if text.lower().startswith(prefix):
            return text[len(prefix) :]
    return text


def graded_map(mask: np.ndarray, score: float) -> np.ndarray:
    """Binary mask + detection score -> a map in [0, 1] whose > 0.5 region is the mask."""
    inside = np.asarray(mask) > 0.5
    score = float(np.clip(score, 0.0, 1.0))
    height, width = inside.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot((yy - (height - 1) / 2) / max(height, 1), (xx - (width - 1) / 2) / max(width, 1))
    out = (CENTRE_PRIOR * (1.0 - r / max(float(r.max()), 1e-6))).astype(np.float32)
    if inside.any():
        d_in = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
        out[inside] = 0.5 + 0.5 * max(score, 1e-3) * (d_in[inside] / max(d_in.max(), 1.0))
        out[inside] = np.maximum(out[inside], np.nextafter(np.float32(0.5), np.float32(1)))
        d_out = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
        near = 0.5 * score * np.exp(-d_out[~inside] / OUTSIDE_DECAY_PX)
        out[~inside] = np.maximum(out[~inside], near)
    return np.clip(out, 0.0, 1.0)


class SegmenterRIS:
    """A ``segment``-stage backend used as a RIS model."""

    def __init__(
        self,
        name: str,
        segmenter: str,
        box_threshold: float,
        text_threshold: float,
        options: dict[str, Any],
    ) -> None:
        from avsbridge.segment import SEGMENTERS

        self.name = name
        self.segmenter_name = segmenter
        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        self._seg = SEGMENTERS.load_all().create(segmenter, **options)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "segmenter": self._seg.identity(),
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
            "graded_map": f"inside 0.5..1 by distance, outside exp(-d/{OUTSIDE_DECAY_PX:g} px)",
        }

    def predict(self, image: np.ndarray, query: str) -> dict[str, Any]:
        prompt = prompt_of(query)
        result = self._seg.segment(image, prompt, self.box_threshold, self.text_threshold)
        score = max((d.score for d in result.detections), default=0.0)
        return {
            "prob": graded_map(result.mask, score),
            "prompt": prompt,
            "detections": [d.to_json() for d in result.detections],
        }


@RIS_MODELS.register("demo-matcher", mem_mb=1500)
def demo_matcher(
    vocabulary: str = "data/demo/vocabulary",
    box_threshold: float = 0.25,
    text_threshold: float = 0.25,
    device: str = "cpu",
) -> SegmenterRIS:
    return SegmenterRIS(
        "demo-matcher",
        "demo-matcher",
        box_threshold,
        text_threshold,
        {"vocabulary": vocabulary, "device": device},
    )


@RIS_MODELS.register("grounded-sam", gpu=True, env="segment", mem_mb=8000)
def grounded_sam(
    segmenter: str = "hf-gdino-sam",
    box_threshold: float = 0.25,
    text_threshold: float = 0.25,
    segmenter_options: dict[str, Any] | None = None,
) -> SegmenterRIS:
    return SegmenterRIS(
        "grounded-sam", segmenter, box_threshold, text_threshold, dict(segmenter_options or {})
    )
