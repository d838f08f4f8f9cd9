"""The demo zero-shot subset: regenerates byte for byte, loads as IS3-like samples with exact
masks, and the demo S4 clips become single-frame samples; bad lists are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avsbridge.data.demo_zeroshot import (
    LIST_NAME,
    generate_demo_zeroshot,
    load_demo_zeroshot,
    single_source_test_clips,
)
from avsbridge.io import ArtifactError, read_image

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"


def test_committed_subset_regenerates_byte_for_byte(tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    shutil.copy(DEMO / "timeline.json", root / "timeline.json")
    shutil.copytree(DEMO / "vocabulary", root / "vocabulary")
    for wav in (DEMO / "Single-source/s4_data/audio_wav/test").glob("*/*.wav"):
        dest = root / wav.relative_to(DEMO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"")  # the generator only references the wavs
    generate_demo_zeroshot(root)
    made = sorted(p.relative_to(root) for p in (root / "zeroshot").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(DEMO) for p in (DEMO / "zeroshot").rglob("*") if p.is_file())
    assert made == committed
    for rel in made:
        assert (root / rel).read_bytes() == (DEMO / rel).read_bytes(), rel


def test_samples_pair_each_image_with_two_sources():
    samples = load_demo_zeroshot(DEMO / LIST_NAME, DEMO)
    assert len(samples) == 12
    groups: dict[str, list] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    assert len(groups) == 6 and all(len(g) == 2 for g in groups.values())
    clips = single_source_test_clips(DEMO)
    for pair in groups.values():
        a, b = pair
        assert a.image == b.image and a.source != b.source
        ga, gb = (read_image(s.gt, mode="L") > 127 for s in pair)
        assert ga.any() and gb.any() and not (ga & gb).any()  # exact, disjoint masks
        for s in pair:
            assert clips[s.audio.stem] == s.source  # the wav's one sounding object
            assert s.audio.is_file() and s.image.suffix == ".jpg"
    size = sum(p.stat().st_size for p in (DEMO / "zeroshot").rglob("*") if p.is_file())
    assert size < 300_000


def test_demo_s4_clips_as_single_frames():
    from avsbridge.zeroshot.samples import dataset_samples, list_file, shard_names

    config = {
        "datasets": {
            "s4z": {"kind": "s4-frames", "root": str(DEMO), "split": "test", "shard_size": 7}
        }
    }
    samples = dataset_samples(config, "s4z")
    assert len(samples) == 12 * 5
    assert samples[0].id == "demo_s4_018_1" and samples[0].frame == 1
    assert len({s.audio for s in samples[:5]}) == 1
    assert shard_names(config, "s4z") == [f"s{i:04d}" for i in range(9)]
    assert list_file(config, "s4z").endswith("Single-source/s4_meta_data.csv")
    gt = read_image(samples[0].gt, mode="L")
    assert gt.dtype == np.uint8


def test_bad_list_names_the_file(tmp_path):
    bad = tmp_path / "list.json"
    bad.write_text(json.dumps({"samples": [{"id": "x", "group": "g", "image": "../a.jpg"}]}))
    with pytest.raises(ArtifactError, match="list.json.*missing key"):
        load_demo_zeroshot(bad, tmp_path)
    entry = {k: "a" for k in ("id", "group", "image", "audio", "gt", "source")}
    bad.write_text(json.dumps({"samples": [{**entry, "image": "../up.jpg"}]}))
    with pytest.raises(ArtifactError, match="escapes"):
        load_demo_zeroshot(bad, tmp_path)
    bad.write_text(json.dumps({"samples": [entry, entry]}))
    with pytest.raises(ArtifactError, match="duplicate"):
        load_demo_zeroshot(bad, tmp_path)
    bad.write_text("[]")
    with pytest.raises(ArtifactError, match="samples"):
        load_demo_zeroshot(bad, tmp_path)
