"""The ``demo-matcher`` backend: vocabulary mapping, detection, box threshold, GrabCut.

Fixtures draw their own sprites with Pillow (a dog-like, a car-like and a tree-like
figure) in the vocabulary format of the demo benchmark, so these tests never
depend on the committed demo data or the emoji font.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from avsbridge.io import ArtifactError, sha256_file
from avsbridge.segment import SEGMENTERS, Segmenter
from avsbridge.segment.demo_detector import (
    MINILM,
    DemoMatcher,
    load_vocabulary,
    minilm_model_dir,
    text_score,
)

FRAME = 224


def _sprite_dog() -> Image.Image:
    img = Image.new("RGBA", (120, 110), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((10, 40, 100, 100), fill=(176, 120, 64, 255))  # body
    d.ellipse((60, 8, 116, 62), fill=(196, 140, 80, 255))  # head
    d.ellipse((56, 4, 74, 40), fill=(90, 50, 20, 255))  # ear
    d.ellipse((100, 4, 118, 40), fill=(90, 50, 20, 255))  # ear
    d.ellipse((78, 26, 86, 34), fill=(20, 20, 20, 255))  # eye
    d.ellipse((96, 26, 104, 34), fill=(20, 20, 20, 255))  # eye
    d.ellipse((86, 40, 98, 50), fill=(30, 10, 10, 255))  # nose
    d.rectangle((20, 90, 34, 109), fill=(150, 100, 50, 255))  # legs
    d.rectangle((74, 90, 88, 109), fill=(150, 100, 50, 255))
    d.ellipse((30, 55, 60, 80), fill=(240, 230, 210, 255))  # patch
    return img


def _sprite_car() -> Image.Image:
    img = Image.new("RGBA", (126, 70), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 22, 125, 54), radius=10, fill=(214, 30, 40, 255))
    d.polygon([(30, 22), (46, 2), (90, 2), (104, 22)], fill=(190, 20, 30, 255))
    d.polygon([(40, 20), (50, 7), (86, 7), (96, 20)], fill=(150, 210, 240, 255))
    for cx in (28, 98):
        d.ellipse((cx - 16, 38, cx + 16, 69), fill=(25, 25, 25, 255))
        d.ellipse((cx - 7, 47, cx + 7, 60), fill=(190, 190, 190, 255))
    d.rectangle((112, 28, 124, 36), fill=(255, 230, 90, 255))
    return img


def _sprite_tree() -> Image.Image:
    img = Image.new("RGBA", (100, 124), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle((40, 70, 60, 123), fill=(110, 70, 30, 255))
    d.ellipse((0, 0, 99, 86), fill=(60, 160, 60, 255))
    d.ellipse((20, 14, 60, 46), fill=(110, 200, 90, 255))
    return img


SPRITES = {"dog": _sprite_dog, "car": _sprite_car, "tree": _sprite_tree}
SYNONYMS = {"dog": ["dog", "hound"], "car": ["car", "race car"], "tree": ["tree"]}


def make_vocabulary(folder: Path) -> Path:
    """Write a demo-format vocabulary (RGBA PNGs + vocabulary.json) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    objects = {}
    for name, draw in SPRITES.items():
        draw().save(folder / f"{name}.png")
        objects[name] = {"file": f"{name}.png", "synonyms": SYNONYMS[name]}
    (folder / "vocabulary.json").write_text(json.dumps({"objects": objects}), encoding="utf-8")
    return folder


def background(seed: int, plain: bool = False) -> np.ndarray:
    """A gradient (+ low-frequency noise unless ``plain``) background, float32 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:FRAME, 0:FRAME].astype(np.float32) / FRAME
    c0, c1 = rng.uniform(60, 200, size=(2, 3))
    img = c0 * (1 - xx[..., None]) + c1 * xx[..., None]
    if not plain:
        noise = rng.normal(0, 1, size=(6, 6, 3)).astype(np.float32)
        img = img + np.asarray(
            Image.fromarray(noise[..., 0]).resize((FRAME, FRAME), Image.BICUBIC)
        )[..., None] * np.float32(12)
    return img.astype(np.float32)


def compose(
    img: np.ndarray, name: str, x: int, y: int, long_side: int, flip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Paste the named sprite at (x, y) with the given long side; returns image, its mask."""
    sprite = SPRITES[name]()
    if flip:
        sprite = sprite.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    factor = long_side / max(sprite.size)
    sprite = sprite.resize(
        (round(sprite.width * factor), round(sprite.height * factor)), Image.LANCZOS
    )
    arr = np.asarray(sprite).astype(np.float32)
    arr = arr[: FRAME - y, : FRAME - x]  # a sprite may run off the right / bottom edge
    alpha = arr[..., 3:4] / 255.0
    h, w = arr.shape[:2]
    region = img[y : y + h, x : x + w]
    img[y : y + h, x : x + w] = region * (1 - alpha) + arr[..., :3] * alpha
    mask = np.zeros((FRAME, FRAME), dtype=bool)
    mask[y : y + h, x : x + w] = alpha[..., 0] >= 0.5
    return img, mask


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _no_model():
    raise AssertionError("exact name/synonym matches must not load MiniLM")


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_vocabulary(tmp_path_factory.mktemp("vocabulary"))


@pytest.fixture(scope="module")
def matcher(vocab_dir: Path) -> DemoMatcher:
    """A backend whose text mapping may not load MiniLM (exact prompts only)."""
    return DemoMatcher(vocab_dir, encoder_factory=_no_model)


@pytest.fixture(scope="module")
def minilm_matcher(vocab_dir: Path) -> DemoMatcher:
    """A backend with the real bundled MiniLM (loaded once for this module)."""
    return DemoMatcher(vocab_dir, device="auto")


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dog (mirrored, mid-size) and a tree distractor on a noisy gradient."""
    img = background(3)
    img, dog = compose(img, "dog", 20, 100, 96, flip=True)
    img, tree = compose(img, "tree", 130, 20, 80)
    return to_uint8(img), {"dog": dog, "tree": tree}


# --------------------------------------------------------------------------- text mapping


def test_exact_and_synonym_prompts_skip_the_model(matcher: DemoMatcher) -> None:
    assert matcher.mapper.map_phrase("dog", 0.25) == [("dog", 1.0)]
    assert matcher.mapper.map_phrase("Hound", 0.25) == [("dog", 1.0)]
    assert matcher.mapper.map_phrase("race cars", 0.25) == [("car", 1.0)]
    assert matcher.mapper.map_phrase("a dog barking", 0.25) == [("dog", 1.0)]
    assert sorted(matcher.objects_for("dog and car, tree.", 0.25)) == ["car", "dog", "tree"]
    assert not matcher.mapper.model_loaded


def test_minilm_maps_near_words_and_drops_far_ones(minilm_matcher: DemoMatcher) -> None:
    mapper = minilm_matcher.mapper
    puppy = mapper.map_phrase("puppy", 0.25)
    assert [name for name, _ in puppy] == ["dog"]
    assert 0.25 <= puppy[0][1] < 1.0  # a model match, not an exact one
    assert [name for name, _ in mapper.map_phrase("automobile", 0.25)] == ["car"]
    assert mapper.map_phrase("wind", 0.25) == []
    assert mapper.map_phrase("music", 0.25) == []
    # the same phrase is dropped once the text threshold exceeds its score
    assert mapper.map_phrase("puppy", min(1.0, puppy[0][1] + 0.01)) == []
    assert mapper.model_loaded


def test_far_prompt_gives_an_empty_mask(minilm_matcher: DemoMatcher, scene) -> None:
    image, _ = scene
    result = minilm_matcher.segment(image, "wind", 0.25, 0.25)
    assert result.detections == [] and not result.mask.any()


def test_text_score_scale() -> None:
    assert text_score(1.0) == 1.0 and text_score(0.0) == 0.0
    assert text_score(0.8) > text_score(0.7) > text_score(0.6)


def test_minilm_weights_are_pinned() -> None:
    model_dir = minilm_model_dir()
    assert sha256_file(model_dir / MINILM.filename) == MINILM.sha256


# --------------------------------------------------------------------------- detection


def test_detects_the_named_object_not_the_distractor(matcher: DemoMatcher, scene) -> None:
    image, masks = scene
    result = matcher.segment(image, "dog", 0.25, 0.25)
    assert result.detections, "the dog was not found"
    best = max(result.detections, key=lambda d: d.score)
    assert best.phrase == "dog"
    assert box_iou(best.box, box_of(masks["dog"])) > 0.8
    assert best.score > 0.75
    for det in result.detections:
        assert box_iou(det.box, box_of(masks["tree"])) < 0.1
    # and the other way round: asking for the tree finds the tree, not the dog
    tree = matcher.segment(image, "tree", 0.25, 0.25).detections
    assert tree and box_iou(max(tree, key=lambda d: d.score).box, box_of(masks["tree"])) > 0.8


def test_absent_object_is_not_detected_at_default_threshold(matcher: DemoMatcher, scene) -> None:
    image, _ = scene
    result = matcher.segment(image, "car", 0.25, 0.25)
    assert result.detections == []
    assert not result.mask.any()


def test_box_threshold_is_monotone(matcher: DemoMatcher) -> None:
    """Occluded, shaded and cut-off objects score in between: the sweep drops them in turn."""
    img = background(11)
    img, _ = compose(img, "dog", 10, 10, 90)
    img, _ = compose(img, "tree", 60, 30, 80)  # hides part of the dog
    img, _ = compose(img, "car", 140, 150, 110)  # runs off the right edge
    img[150:, 130:] *= 0.8  # and sits in shadow
    image = to_uint8(img)
    thresholds = (0.0, 0.15, 0.25, 0.35, 0.55, 0.75, 0.9, 0.99, 1.0)
    counts, pixels = [], []
    for threshold in thresholds:
        result = matcher.segment(image, "dog, car, tree", threshold, 0.25)
        assert all(d.score >= threshold for d in result.detections)
        counts.append(len(result.detections))
        pixels.append(int(result.mask.sum()))
    assert counts == sorted(counts, reverse=True)
    assert pixels == sorted(pixels, reverse=True)
    assert counts[thresholds.index(0.25)] == 3  # the default keeps all three true objects
    assert counts[thresholds.index(0.9)] < 3  # a strict threshold keeps only near-perfect ones
    assert counts[0] > 3  # threshold 0 lets background matches in


def test_grabcut_mask_matches_sprite_alpha(matcher: DemoMatcher) -> None:
    img = background(5, plain=True)
    img, dog = compose(img, "dog", 60, 50, 110)
    result = matcher.segment(to_uint8(img), "dog", 0.25, 0.25)
    assert result.mask.dtype == np.float32
    assert set(np.unique(result.mask)) <= {0.0, 1.0}
    assert mask_iou(result.mask > 0.5, dog) > 0.8


def test_two_phrases_give_the_union(matcher: DemoMatcher) -> None:
    img = background(7)
    img, dog = compose(img, "dog", 5, 10, 90)
    img, car = compose(img, "car", 100, 140, 110)
    image = to_uint8(img)
    both = matcher.segment(image, "dog, car", 0.25, 0.25)
    only_dog = matcher.segment(image, "dog", 0.25, 0.25)
    assert {d.phrase for d in both.detections} == {"dog", "car"}
    assert mask_iou(both.mask > 0.5, dog | car) > 0.75
    assert only_dog.mask.sum() < both.mask.sum()


@pytest.mark.parametrize("prompt", ["", " ", ", ,"])
def test_empty_prompt_is_silence(matcher: DemoMatcher, scene, prompt: str) -> None:
    image, _ = scene
    result = matcher.segment(image, prompt, 0.25, 0.25)
    assert result.mask.shape == image.shape[:2] and result.mask.dtype == np.float32
    assert not result.mask.any() and result.detections == []


# --------------------------------------------------------------------------- plumbing


def test_registry_and_identity(vocab_dir: Path) -> None:
    backend = SEGMENTERS.create("demo-matcher", vocabulary=str(vocab_dir))
    assert isinstance(backend, Segmenter)
    identity = backend.identity()
    assert identity["backend"] == "demo-matcher"
    assert identity["text_model_sha256"] == MINILM.sha256
    assert identity["vocabulary"]["dog"] == sha256_file(vocab_dir / "dog.png")


def test_bad_vocabulary_names_the_file(tmp_path: Path) -> None:
    folder = make_vocabulary(tmp_path / "v")
    (folder / "car.png").unlink()
    with pytest.raises(ArtifactError) as err:
        load_vocabulary(folder)
    assert err.value.path == folder / "car.png"
    (folder / "vocabulary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError) as err:
        load_vocabulary(folder)
    assert err.value.path == folder / "vocabulary.json"
    (folder / "car.png").write_bytes(b"not a png")
    make_vocabulary(folder)
    (folder / "tree.png").write_bytes(b"not a png")
    with pytest.raises(ArtifactError, match="unreadable") as err:
        load_vocabulary(folder)
    assert err.value.path == folder / "tree.png"


def test_rejects_non_rgb_frames(matcher: DemoMatcher) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        matcher.segment(np.zeros((8, 8), np.uint8), "dog", 0.25, 0.25)
