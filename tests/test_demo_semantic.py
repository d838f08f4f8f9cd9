"""The demo benchmark's AVSBench-semantic subset (data/demo/AVSBench_semantic).

Reads only the committed files; the regeneration test skips (with the reason)
where the Debian tools are absent.
"""

from __future__ import annotations

import io
import json
import warnings
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbridge.data import demo, demo_semantic
from avsbridge.data.avsbench import (
    AVSS_NUM_CLASSES,
    V3_SPLIT_FILES,
    avss_class_map,
    avss_root_palette,
    load_avss,
    load_benchmark,
    load_v3,
    read_avss_label,
)
from avsbridge.data.demo_assets import sounds
from avsbridge.data.demo_assets.catalogue import AVSS_CLASSES, SEMANTIC_CLASSES
from avsbridge.data.demo_assets.sprites import find_emoji_font, load_sprites
from avsbridge.io import read_image, read_json, read_wav

HEADER = ["vid", "uid", "s_min", "s_sec", "a_obj", "split", "label"]


@pytest.fixture(scope="module")
def root(repo_root: Path) -> Path:
    path = repo_root / "data" / "demo" / demo_semantic.SUBDIR
    if not (path / "metadata.csv").is_file():
        pytest.fail(f"the demo AVSBench-semantic subset is not committed under {path}")
    return path


@pytest.fixture(scope="module")
def manifest(root: Path) -> dict:
    return read_json(root.parent / "manifest.json")


@pytest.fixture(scope="module")
def plans(manifest: dict) -> dict[str, demo_semantic.SemanticClipPlan]:
    return {p.uid: p for p in demo_semantic.plan_semantic(int(manifest["seed"]))}


@pytest.fixture(scope="module")
def timeline(root: Path) -> dict:
    return read_json(root / "timeline.json")


# ------------------------------------------------------------------ layout and adapters


def test_metadata_header_and_label2idx(root: Path) -> None:
    assert (root / "metadata.csv").read_text().splitlines()[0].split(",") == HEADER
    class_map = avss_class_map(root)
    assert list(class_map) == list(AVSS_CLASSES) and len(class_map) == AVSS_NUM_CLASSES
    assert class_map["background"] == 0
    assert set(SEMANTIC_CLASSES) <= set(class_map)


def test_every_clip_validates_through_the_adapters(root: Path, plans) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no short audio either
        clips = load_avss(root, validate=True)
        for name in V3_SPLIT_FILES:
            assert load_v3(root, name, validate=True), name
    assert {c.id for c in clips} == set(plans)
    counts = Counter((c.subset, c.split) for c in clips)
    assert {s for _, s in counts} == {"train", "val", "test"}
    assert {sub for sub, _ in counts} == {"avss-v1s", "avss-v1m", "avss-v2"}
    test = load_benchmark("avss", root, "test")
    assert {c.subset for c in test} == {"avss-v1s", "avss-v1m", "avss-v2"}
    for clip in clips:
        plan = plans[clip.id]
        assert clip.n_frames == {"avss-v2": 10}.get(clip.subset, 5)
        assert clip.labels == plan.classes
        expected = [0] if plan.label == "v1s" and plan.split == "train" else list(range(10))
        assert clip.annotated == expected[: clip.n_frames]


def test_media_formats(root: Path, plans) -> None:
    for plan in plans.values():
        frames, labels, audio = demo_semantic.clip_paths(root, plan)
        assert len(frames) == plan.n_frames
        for frame in frames:
            with Image.open(frame) as img:
                assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (224, 224)), frame
        for label in labels:
            if label is not None:
                with Image.open(label) as img:
                    assert (img.format, img.mode, img.size) == ("PNG", "RGB", (224, 224)), label
        with wave.open(str(audio), "rb") as wf:
            assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate()) == (1, 2, 16000)
            assert wf.getnframes() == plan.n_frames * 16000, audio
    # files the adapters do not know about are only the subset's own extras
    top = {p.name for p in root.iterdir()}
    assert top == {"metadata.csv", "label2idx.json", "timeline.json", "v1s", "v1m", "v2", "v3",
                   "vocabulary"}  # fmt: skip


# ------------------------------------------------------------------ labels


def test_labels_decode_to_the_clip_classes(root: Path, plans, timeline) -> None:
    palette = avss_root_palette(root)
    ids = avss_class_map(root)
    names = {i: n for n, i in ids.items()}
    multi_class_frames = 0
    silent_frames = 0
    seen_ids: set[int] = set()
    for uid, plan in plans.items():
        _, labels, _ = demo_semantic.clip_paths(root, plan)
        entry = timeline[uid]
        assert entry["a_obj"] == plan.a_obj and len(entry["frames"]) == plan.n_frames
        for k, path in enumerate(labels):
            if path is None:
                continue
            label = read_avss_label(path, palette)  # strict: every colour is a class colour
            present = {int(v) for v in np.unique(label)} - {0}
            seen_ids |= present
            assert {names[i] for i in present} == set(entry["frames"][k]), path
            assert set(entry["frames"][k]) <= set(plan.classes)
            for i in present:
                assert int((label == i).sum()) >= demo_semantic.MIN_SOUNDING_PIXELS, (path, i)
            multi_class_frames += len(present) >= 2
            silent_frames += not present
    assert multi_class_frames >= 10
    assert silent_frames >= 3
    assert {names[i] for i in seen_ids} == set(SEMANTIC_CLASSES)


def test_ten_frame_v2_clips_and_several_classes(plans, timeline) -> None:
    v2 = [u for u, p in plans.items() if p.label == "v2"]
    assert len(v2) >= 8 and all(len(timeline[u]["frames"]) == 10 for u in v2)
    assert any(max(len(f) for f in timeline[u]["frames"]) >= 2 for u in v2)
    groups = Counter(p.group for p in plans.values())
    assert groups.keys() == {"seen", "unseen", "mixed", "v1s"}
    assert sum("_" in p.a_obj for p in plans.values()) >= 10


def test_labels_rerender_exactly_from_committed_vocabulary(
    root: Path, plans, timeline, manifest: dict
) -> None:
    """Recompute frames and label maps from the committed sprites (no Debian tools needed)."""
    same_pillow = demo._environment_versions()["pillow"] == manifest["python_packages"]["pillow"]
    sprites = load_sprites(root / "vocabulary", demo_semantic.semantic_objects())
    chosen = [
        next(u for u, p in plans.items() if p.label == "v2" and "_" in p.a_obj),
        next(u for u, p in plans.items() if p.label == "v1m" and p.group == "unseen"),
    ]
    for uid in chosen:
        plan = plans[uid]
        frames, masks = demo_semantic.clip_layout(plan, sprites)
        frame_paths, label_paths, _ = demo_semantic.clip_paths(root, plan)
        for k in range(plan.n_frames):
            committed = read_image(frame_paths[k]).astype(int)
            if same_pillow:  # the same encoder gives the same JPEG
                buf = io.BytesIO()
                Image.fromarray(frames[k]).save(
                    buf, format="JPEG", quality=demo_semantic.JPEG_QUALITY
                )
                assert buf.getvalue() == frame_paths[k].read_bytes(), frame_paths[k]
            assert np.abs(committed - frames[k].astype(int)).mean() < 6.0, frame_paths[k]
            expected = demo_semantic.label_rgb(
                demo_semantic.label_map(masks[k], timeline[uid]["sounding_objects"][k])
            )
            assert label_paths[k] is not None
            assert np.array_equal(read_image(label_paths[k]), expected), label_paths[k]


def test_audio_is_silent_exactly_where_nothing_sounds(root: Path, plans) -> None:
    quiet = loud = 0
    for plan in plans.values():
        samples, rate = read_wav(demo_semantic.clip_paths(root, plan)[2])
        for k in range(plan.n_frames):
            rms = float(np.sqrt(np.mean(samples[k * rate : (k + 1) * rate] ** 2)))
            overlap = sum(
                max(0.0, min(b, k + 1.0) - max(a, float(k)))
                for ivs in plan.sounding.values()
                for a, b in ivs
            )
            if overlap == 0:
                assert rms < 0.005, (plan.uid, k, rms)
                quiet += 1
            elif plan.sounding_in_frame(k):
                assert rms > 0.01, (plan.uid, k, rms)
                loud += 1
    assert quiet >= 3 and loud >= 150


# ------------------------------------------------------------------ manifest and generator


def test_manifest_section(root: Path, manifest: dict, plans) -> None:
    section = manifest["avss"]
    assert section["root"] == demo_semantic.SUBDIR
    assert set(section["clips"]) == set(plans)
    assert (
        section["counts"]["v3"]["meta_v3_unseen"]
        == len((root / "v3" / "meta_v3_unseen.csv").read_text().splitlines()) - 1
    )
    md = (root.parent / "MANIFEST.md").read_text()
    assert "## AVSBench-semantic subset" in md
    for cls in SEMANTIC_CLASSES.values():
        assert f"| {cls.name} | {cls.obj} (" in md
    for key in ("horse_neigh", "sheep", "pig", "duck", "rooster", "bell"):
        assert f"| {key} |" in md and sounds.SOURCES[key].licence in md


def test_object_demo_plans_do_not_depend_on_the_subset() -> None:
    """The subset draws from its own stream: the S4/MS3 plans are those of seed 0 as before."""
    names = [p.name for p in demo.plan_demo(0)]
    assert names[:2] == ["demo_s4_000", "demo_s4_001"] and len(names) == 42
    assert not set(names) & set(demo_semantic.semantic_uids(0))
    assert demo_semantic.plan_semantic(0) == demo_semantic.plan_semantic(0)
    assert demo_semantic.plan_semantic(0) != demo_semantic.plan_semantic(1)


def _need_generator_tools() -> None:
    missing = sounds.missing_tools()
    if find_emoji_font() is None:
        missing.append("fonts-noto-color-emoji")
    if missing:
        pytest.skip(f"regenerating needs Debian packages: {', '.join(missing)}")
    if not (demo.default_cache_dir() / sounds.OVOS_WHEEL).is_file():
        pytest.skip(f"CC0 animal recordings wheel not cached in {demo.default_cache_dir()}")


def test_regenerated_semantic_clips_are_byte_identical(
    root: Path, manifest: dict, plans, tmp_path: Path
) -> None:
    _need_generator_tools()
    names = [
        next(u for u, p in plans.items() if p.label == "v2" and "_" in p.a_obj),
        next(u for u, p in plans.items() if p.label == "v1s" and p.split == "train"),
        next(u for u, p in plans.items() if p.a_obj == "hen"),
    ]
    seed = int(manifest["seed"])
    demo.generate_demo(tmp_path / "a", seed, only=names)
    demo.generate_demo(tmp_path / "b", seed, only=names, vocabulary_dir=root.parent / "vocabulary")
    files_a = read_json(tmp_path / "a" / "manifest.json")["files"]
    files_b = read_json(tmp_path / "b" / "manifest.json")["files"]
    assert files_a == files_b
    clip_files = [r for r in files_a if any(f"/{n}/" in r for n in names)]
    n_frames = [plans[n].n_frames for n in names]
    n_labels = [plans[n].n_masks for n in names]
    assert len(clip_files) == sum(n_frames) + sum(n_labels) + len(names)
    same_tools = sounds.tool_versions() == manifest["tool_versions"]
    same_pillow = demo._environment_versions()["pillow"] == manifest["python_packages"]["pillow"]
    for rel in clip_files:
        if rel.endswith(".wav") and not same_tools:
            continue  # other tool versions may render other samples
        if rel.endswith(".jpg") and not same_pillow:
            continue  # another libjpeg may encode other bytes
        assert files_a[rel] == manifest["files"][rel], rel
    prefix = f"{demo_semantic.SUBDIR}/"
    whole = [  # written in full whatever ``only`` says
        rel
        for rel in manifest["files"]
        if rel in (prefix + "metadata.csv", prefix + "label2idx.json")
        or rel.startswith((prefix + "v3/", prefix + "vocabulary/"))
    ]
    assert len(whole) == 2 + len(V3_SPLIT_FILES) + len(demo_semantic.semantic_objects()) + 1
    for rel in whole:
        assert files_a[rel] == manifest["files"][rel], rel
    entries = json.loads((tmp_path / "a" / demo_semantic.SUBDIR / "timeline.json").read_text())
    assert set(entries) == set(names)
