"""The demo matcher's staged path (cached detections) gives the unstaged path's bytes.

Issue 10: the demo matcher is a StagedSegmenter -- template matching of one (frame,
object) is its detector call, cached before the box threshold with its calibrated
scores and rival margins; GrabCut is its decoder. This runs the unstaged per-frame
path (``objects_for`` -> ``detect`` with the threshold inside -> GrabCut, as
``DemoMatcher.segment`` was before the split) and the staged one (through the cache,
its JSON round trip included) on committed demo test frames (real emoji renders,
look-alike distractors, so rival margins matter) at three box thresholds, and compares
masks, boxes and scores exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avsbridge.data.avsbench import load_ms3, load_s4
from avsbridge.io import read_image, read_json, write_prob_png
from avsbridge.segment.base import Detection, SegResult, StagedSegmenter, empty_result
from avsbridge.segment.demo_detector import DemoMatcher, detect, grabcut_mask
from avsbridge.segment.run import _StagedRun, mask_name, segment_shard
from avsbridge.segment.vfm_cache import VfmCaches, VfmCacheSettings, frame_sha256

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
THRESHOLDS = (0.15, 0.45, 0.75)
TEXT_THRESHOLD = 0.25
# per clip, one prompt per frame: sounding objects, their silent look-alikes, silence
PROMPTS = {
    "demo_s4_020": ["man, woman, tree", "", "man", "woman, violin", "man, woman, tree"],
    "demo_s4_025": ["car, guitar", "car", "", "ambulance, bird, guitar", "car, guitar"],
    "demo_ms3_009": ["man, violin, woman", "guitar, horse", "man", "", "woman, guitar"],
}


def _no_model():
    raise AssertionError("exact names must not load MiniLM")


@pytest.fixture(scope="module")
def matcher() -> DemoMatcher:
    return DemoMatcher(DEMO / "vocabulary", encoder_factory=_no_model)


@pytest.fixture(scope="module")
def clips() -> list[Any]:
    found = {c.id: c for c in load_s4(DEMO, split="test") + load_ms3(DEMO, split="test")}
    return [found[name] for name in PROMPTS]


@pytest.fixture(scope="module")
def frames(clips: list[Any]) -> list[tuple[Any, int, np.ndarray, str]]:
    return [
        (clip, k, read_image(path), prompt)
        for clip in clips
        for k, (path, prompt) in enumerate(zip(clip.frames, PROMPTS[clip.id], strict=True), 1)
    ]


def _unstaged(matcher: DemoMatcher, image: np.ndarray, prompt: str, thr: float) -> SegResult:
    """The per-frame path before the split: threshold inside ``detect``, GrabCut per box."""
    result = empty_result(image)
    objects = matcher.objects_for(prompt, TEXT_THRESHOLD)
    if not objects:
        return result
    frame = image.astype(np.float32) / 255.0
    height, width = image.shape[:2]
    union = np.zeros(image.shape[:2], dtype=bool)
    for name, phrase in objects.items():
        rivals = [bank for other, bank in matcher.banks.items() if other != name]
        found = detect(
            frame, matcher.banks[name], thr, matcher.max_detections, matcher.settings, rivals
        )
        for cand in found:
            union |= grabcut_mask(image, cand, iterations=matcher.grabcut_iterations)
            result.detections.append(
                Detection(box=cand.clipped_box(width, height), score=cand.score, phrase=phrase)
            )
    result.mask = union.astype(np.float32)
    return result


@pytest.fixture(scope="module")
def reference(
    matcher: DemoMatcher, frames: list[tuple[Any, int, np.ndarray, str]]
) -> dict[float, list[SegResult]]:
    return {
        thr: [_unstaged(matcher, image, prompt, thr) for _, _, image, prompt in frames]
        for thr in THRESHOLDS
    }


def _exact(results: list[SegResult], expected: list[SegResult]) -> None:
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        assert got.mask.dtype == want.mask.dtype and np.array_equal(got.mask, want.mask)
        # full precision: boxes and scores as floats, not the rounded JSON
        assert [(d.box, d.score, d.phrase) for d in got.detections] == [
            (d.box, d.score, d.phrase) for d in want.detections
        ]


def test_the_sweep_is_not_trivial(reference: dict[float, list[SegResult]]) -> None:
    """The frames exercise the threshold: boxes drop out along the sweep, none appear."""
    counts = [sum(len(r.detections) for r in reference[thr]) for thr in THRESHOLDS]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1] > 0
    scores = [d.score for r in reference[THRESHOLDS[0]] for d in r.detections]
    assert any(THRESHOLDS[0] <= s < THRESHOLDS[1] for s in scores)  # a look-alike's weak box


def test_matcher_is_staged_and_segment_is_the_staged_path(
    matcher: DemoMatcher,
    frames: list[tuple[Any, int, np.ndarray, str]],
    reference: dict[float, list[SegResult]],
) -> None:
    assert isinstance(matcher, StagedSegmenter)
    assert matcher.encoder_identity() is None
    queries = matcher.detection_queries("Guitars; the singer, person", TEXT_THRESHOLD)
    assert queries == ["guitar", "woman", "man"]  # each object once, in the order named
    results = [
        matcher.segment(image, prompt, 0.45, TEXT_THRESHOLD) for _, _, image, prompt in frames
    ]
    _exact(results, reference[0.45])


def test_cached_detections_give_the_unstaged_bytes(
    matcher: DemoMatcher,
    clips: list[Any],
    frames: list[tuple[Any, int, np.ndarray, str]],
    reference: dict[float, list[SegResult]],
    tmp_path: Path,
) -> None:
    text = tmp_path / "text"
    text.mkdir()
    for clip in clips:
        (text / f"{clip.slug}.json").write_text(
            json.dumps({"clip": clip.id, "prompts": PROMPTS[clip.id]})
        )
    settings = VfmCacheSettings(root=tmp_path / "vfm_cache")
    options = {"vocabulary": str(DEMO / "vocabulary")}
    # distinct (frame pixels, object) pairs: what the runner's detection keys tell apart
    pairs = len(
        {
            (frame_sha256(image), name)
            for _, _, image, prompt in frames
            for name in matcher.detection_queries(prompt, TEXT_THRESHOLD)
        }
    )
    assert pairs >= 20
    for n, thr in enumerate(THRESHOLDS):
        out = tmp_path / f"staged_{thr}"
        segment_shard(clips, text, "demo-matcher", options, thr, TEXT_THRESHOLD, out, settings)
        calls = read_json(out / "_calls.json")["vfm_calls"]
        assert calls["staged"] is True and calls["encoder_calls"] == 0
        # the first threshold matches every (frame, object) once; the others none
        assert calls["detector_calls"] == (pairs if n == 0 else 0)
        assert calls["cache"]["detections"]["hits"] == (0 if n == 0 else pairs)
        # the written bytes: the reference masks through the same PNG writer, its boxes
        expected = tmp_path / f"expected_{thr}"
        boxes: dict[str, dict[str, Any]] = {}
        for (clip, k, _, prompt), want in zip(frames, reference[thr], strict=True):
            write_prob_png(expected / mask_name(clip.slug, k), want.mask)
            boxes.setdefault(clip.slug, {})[str(k)] = {
                "prompt": prompt,
                "detections": [d.to_json() for d in want.detections],
            }
            assert (out / mask_name(clip.slug, k)).read_bytes() == (
                expected / mask_name(clip.slug, k)
            ).read_bytes()
        for clip in clips:
            assert read_json(out / f"{clip.slug}.boxes.json") == {
                "box_threshold": thr,
                "text_threshold": TEXT_THRESHOLD,
                "frames": boxes[clip.slug],
            }
    # full precision from the cached (JSON round-tripped) candidates: not one detector call
    engine = _StagedRun(matcher, VfmCaches(settings), batch_size=4)
    images = [image for _, _, image, _ in frames]
    prompts = [prompt for _, _, _, prompt in frames]
    for thr in THRESHOLDS:
        _exact(engine.segment_frames(images, prompts, thr, TEXT_THRESHOLD), reference[thr])
    assert engine.detector_calls == 0
