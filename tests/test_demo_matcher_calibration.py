"""The demo matcher's box scores are calibrated confidences, and the demo shows the trade.

Uses the committed demo vocabulary (the real emoji renders) and a committed demo
test clip with a silent look-alike distractor (catalogue.LOOKALIKES).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbridge.data import demo
from avsbridge.data.avsbench import load_s4
from avsbridge.data.demo_assets.catalogue import LOOKALIKES
from avsbridge.io import read_image
from avsbridge.metrics.avsbench import frame_miou
from avsbridge.segment.demo_detector import DemoMatcher, box_confidence

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
SWEEP = (0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75)  # params.yaml vfm.sweep (Figure 5)


def _no_model():
    raise AssertionError("exact names must not load MiniLM")


@pytest.fixture(scope="module")
def matcher() -> DemoMatcher:
    return DemoMatcher(DEMO / "vocabulary", encoder_factory=_no_model)


def _paste(img: np.ndarray, rgba: np.ndarray, x: int, y: int, long_side: int) -> np.ndarray:
    sprite = Image.fromarray(rgba)
    factor = long_side / max(sprite.size)
    sprite = sprite.resize(
        (round(sprite.width * factor), round(sprite.height * factor)), Image.LANCZOS
    )
    arr = np.asarray(sprite).astype(np.float32)
    alpha = arr[..., 3:4] / 255.0
    h, w = arr.shape[:2]
    img[y : y + h, x : x + w] = img[y : y + h, x : x + w] * (1 - alpha) + arr[..., :3] * alpha
    mask = np.zeros(img.shape[:2], dtype=bool)
    mask[y : y + h, x : x + w] = alpha[..., 0] >= 0.5
    return mask


def _inside(box: tuple[float, ...], mask: np.ndarray) -> float:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return float(mask[y0:y1, x0:x1].sum()) / max(1.0, float(mask.sum()))


def test_lookalike_distractor_scores_below_the_true_object(matcher: DemoMatcher) -> None:
    """The man's template also fits the woman's render: that box must score low."""
    img = np.zeros((224, 224, 3), np.float32) + np.array([120.0, 150.0, 170.0], np.float32)
    man = _paste(img, matcher.vocabulary["man"].rgba, 8, 60, 96)
    woman = _paste(img, matcher.vocabulary["woman"].rgba, 118, 60, 96)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    detections = matcher.segment(image, "man", 0.0, 0.25).detections
    on_man = [d.score for d in detections if _inside(d.box, man) > 0.8]
    on_woman = [d.score for d in detections if _inside(d.box, woman) > 0.8]
    assert on_man and on_woman, detections  # the false match exists ...
    assert max(on_man) > 0.9  # ... the true one is confident ...
    assert max(on_woman) < 0.5 < max(on_man)  # ... and the default threshold drops the false one


def test_box_confidence_rises_with_match_quality() -> None:
    assert box_confidence(0.98, 1.0, 0.2) > 0.95
    assert box_confidence(0.45, 1.0, 0.0) < 0.01  # a background peak
    assert box_confidence(0.98, 1.0) > box_confidence(0.9, 1.0) > box_confidence(0.9, 0.5)
    # another object's template fits this place better: not a confident box
    assert box_confidence(0.9, 1.0, 0.1) > 0.5 > box_confidence(0.9, 1.0, -0.1)
    assert 0.0 < box_confidence(-1.0, 0.0, -1.0) < box_confidence(1.0, 1.0, 1.0) < 1.0


def test_demo_clips_show_lookalike_distractors() -> None:
    plans = {p.name: p for p in demo.plan_demo(0)}
    with_lookalike = [
        p
        for p in plans.values()
        if p.split == "test" and any(LOOKALIKES.get(o) in p.silent for o in p.sounding)
    ]
    assert len(with_lookalike) >= 8
    for plan in plans.values():  # distractors stay silent and of another class
        assert not set(plan.silent) & set(plan.sounding)


def test_raising_the_box_threshold_trades_recall_for_precision(matcher: DemoMatcher) -> None:
    """Demo test clip demo_s4_020 (a man speaks; a silent woman is in view), prompt "man"."""
    (clip,) = [c for c in load_s4(DEMO, split="test") if c.id == "demo_s4_020"]
    frames = [read_image(f) for f in clip.frames]
    gts = [read_image(m, mode="L") > 127 for m in clip.masks]
    pixels, mious = [], []
    for threshold in SWEEP:
        masks = [matcher.segment(f, "man", threshold, 0.25).mask for f in frames]
        pixels.append(int(sum(m.sum() for m in masks)))
        mious.append(
            np.mean([frame_miou(m, g.astype(np.float32)) for m, g in zip(masks, gts, strict=True)])
        )
    assert pixels == sorted(pixels, reverse=True)  # monotone: fewer boxes, fewer pixels
    assert pixels[0] > pixels[-1]  # and the sweep is not flat
    best = int(np.argmax(mious))
    assert 0 < best  # the lowest threshold admits the look-alike's false box ...
    assert mious[best] > mious[0] + 0.05  # ... which a higher one removes
