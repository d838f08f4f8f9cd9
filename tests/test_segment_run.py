"""The segment stage runner: one shard -> per-frame mask PNGs + boxes JSON, atomically."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_segment_demo import background, compose, make_vocabulary, mask_iou, to_uint8

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, WriteError, read_json, read_prob_png, write_png
from avsbridge.provenance.records import LEDGER_NAME
from avsbridge.registry import UnknownBackendError
from avsbridge.segment import SEGMENTERS, Detection, SegResult
from avsbridge.segment.run import load_segmenter, read_prompts, segment_shard

LOADS: list[dict[str, Any]] = []


class _WrongSizeSegmenter:
    """Test double: records how often it is built and returns a mask of the wrong size."""

    name = "test-wrong-size"

    def __init__(self, **options: Any) -> None:
        LOADS.append(options)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name}

    def segment(self, image, prompt, box_threshold, text_threshold) -> SegResult:
        return SegResult(mask=np.zeros((3, 3), np.float32), detections=[])


class _CountingSegmenter(_WrongSizeSegmenter):
    name = "test-counting"

    def segment(self, image, prompt, box_threshold, text_threshold) -> SegResult:
        mask = np.zeros(image.shape[:2], np.float32)
        if prompt:
            mask[:4, :4] = 1.0
        return SegResult(mask=mask, detections=[Detection((0, 0, 4, 4), 0.5, prompt)])


for _cls in (_WrongSizeSegmenter, _CountingSegmenter):
    if _cls.name not in SEGMENTERS:
        SEGMENTERS.register(_cls.name)(_cls)


@pytest.fixture()
def shard(tmp_path: Path) -> dict[str, Any]:
    """A 3-frame clip (dog; silence; dog + car), its prompts and a vocabulary."""
    vocab = make_vocabulary(tmp_path / "vocabulary")
    frames, truth = [], []
    for k in range(3):
        img = background(20 + k)
        img, dog = compose(img, "dog", 10 + 15 * k, 20, 96)
        img, car = compose(img, "car", 90, 140 - 10 * k, 110)
        path = tmp_path / "frames" / f"clip_a_{k + 1}.png"
        write_png(path, to_uint8(img))
        frames.append(path)
        truth.append({"dog": dog, "car": car})
    clip = Clip(
        id="cat/clip_a",
        subset="demo-s4",
        split="test",
        category="dog_barking",
        frames=tuple(frames),
        audio=None,
        masks=(None, None, None),
    )
    prompt_dir = tmp_path / "prompts"
    prompt_dir.mkdir()
    prompts = ["dog", "", "dog, car"]
    (prompt_dir / f"{clip.slug}.json").write_text(
        json.dumps({"clip": clip.id, "prompts": prompts}), encoding="utf-8"
    )
    return {
        "clip": clip,
        "prompt_dir": prompt_dir,
        "vocab": vocab,
        "truth": truth,
        "out": tmp_path / "out" / "shard_0",
    }


def _run(shard: dict[str, Any], **overrides: Any) -> None:
    kwargs: dict[str, Any] = {
        "clips": [shard["clip"]],
        "prompt_dir": shard["prompt_dir"],
        "backend": "demo-matcher",
        "backend_options": {"vocabulary": str(shard["vocab"])},
        "box_threshold": 0.25,
        "text_threshold": 0.25,
        "out_dir": shard["out"],
    }
    kwargs.update(overrides)
    segment_shard(**kwargs)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []


def test_segment_shard_end_to_end(shard: dict[str, Any]) -> None:
    _run(shard)
    out = shard["out"]
    files = sorted(p.name for p in out.iterdir() if p.name.startswith("cat__clip_a."))
    assert files == [
        "cat__clip_a.1.png",
        "cat__clip_a.2.png",
        "cat__clip_a.3.png",
        "cat__clip_a.boxes.json",
    ]
    masks = [read_prob_png(out / f"cat__clip_a.{k}.png") > 0.5 for k in (1, 2, 3)]
    assert all(m.shape == (224, 224) for m in masks)
    truth = shard["truth"]
    assert mask_iou(masks[0], truth[0]["dog"]) > 0.8
    assert not masks[1].any()  # silence
    assert mask_iou(masks[2], truth[2]["dog"] | truth[2]["car"]) > 0.75

    clip_boxes = read_json(out / "cat__clip_a.boxes.json")
    assert clip_boxes["box_threshold"] == 0.25 and clip_boxes["text_threshold"] == 0.25
    boxes = [clip_boxes["frames"][str(k)] for k in (1, 2, 3)]
    assert boxes[0]["prompt"] == "dog"
    assert [d["phrase"] for d in boxes[0]["detections"]] == ["dog"]
    assert len(boxes[0]["detections"][0]["box"]) == 4
    assert boxes[1] == {"prompt": "", "detections": []}
    assert {d["phrase"] for d in boxes[2]["detections"]} == {"dog", "car"}

    summary = read_json(shard["out"] / "_summary.json")
    assert summary["backend"] == "demo-matcher"
    assert summary["identity"]["backend"] == "demo-matcher"
    assert summary["clips"]["cat/clip_a"] == {
        "slug": "cat__clip_a",
        "frames": 3,
        "detections": 3,
        "empty_frames": 1,
    }
    assert _leftovers(shard["out"]) == ["shard_0"]


def test_rerun_replaces_the_folder_and_is_deterministic(shard: dict[str, Any]) -> None:
    _run(shard)
    first = {p.name: p.read_bytes() for p in shard["out"].glob("cat__clip_a.*")}
    (shard["out"] / "stale.txt").write_text("old run", encoding="utf-8")
    _run(shard)
    second = {p.name: p.read_bytes() for p in shard["out"].glob("cat__clip_a.*")}
    assert first == second
    assert not (shard["out"] / "stale.txt").exists()
    assert _leftovers(shard["out"]) == ["shard_0"]


def test_missing_prompt_file_names_it_and_writes_nothing(shard: dict[str, Any]) -> None:
    missing = shard["prompt_dir"] / "cat__clip_a.json"
    missing.unlink()
    LOADS.clear()
    with pytest.raises(ArtifactError) as err:
        _run(shard, backend="test-counting", backend_options={})
    assert err.value.path == missing and "missing" in err.value.problem
    assert LOADS == []  # failed before loading the backend
    assert _leftovers(shard["out"]) == []


def test_wrong_frame_count_and_wrong_clip(shard: dict[str, Any]) -> None:
    path = shard["prompt_dir"] / "cat__clip_a.json"
    path.write_text(json.dumps({"clip": "cat/clip_a", "prompts": ["dog", ""]}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="2 prompts but clip 'cat/clip_a' has 3 frames"):
        read_prompts(shard["prompt_dir"], shard["clip"])
    path.write_text(json.dumps({"clip": "other", "prompts": ["", "", ""]}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="not 'cat/clip_a'"):
        _run(shard)
    path.write_text(json.dumps({"prompts": ["", 3, ""]}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="must be a string"):
        _run(shard)
    assert _leftovers(shard["out"]) == []


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _other_prompts(shard: dict[str, Any]) -> None:
    """Prompts under which every file of the shard differs (empty and non-empty swap)."""
    path = shard["prompt_dir"] / f"{shard['clip'].slug}.json"
    path.write_text(json.dumps({"clip": shard["clip"].id, "prompts": ["", "car", ""]}))


def test_corrupt_frame_names_it_and_keeps_the_previous_output(shard: dict[str, Any]) -> None:
    _run(shard, backend="test-counting", backend_options={})
    before = _files(shard["out"])
    _other_prompts(shard)  # frames 1-2 of the new run differ from the earlier ones
    bad = shard["clip"].frames[2]
    good = bad.read_bytes()
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(ArtifactError) as err:
        _run(shard, backend="test-counting", backend_options={})
    assert err.value.path == bad
    # the earlier, complete folder is untouched, byte for byte, and no temp folder is left
    assert _files(shard["out"]) == before
    assert _leftovers(shard["out"]) == ["shard_0"]
    bad.write_bytes(good)
    _run(shard, backend="test-counting", backend_options={})
    after = _files(shard["out"])
    # every content file differs; the run ledger (model calls) may repeat itself
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before if k != LEDGER_NAME)


@pytest.mark.parametrize("nth_file", [1, 2, 3, 4, 5])
def test_disk_full_at_the_nth_file_keeps_the_previous_output(
    nth_file: int, shard: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 masks, the boxes and the summary: the Nth of the 5 files cannot be written."""
    _run(shard, backend="test-counting", backend_options={})
    before = _files(shard["out"])
    _other_prompts(shard)
    real_replace, files = os.replace, [0]

    def replace_disk_full_at_nth(src: str | Path, dst: str | Path) -> None:
        if not Path(src).is_dir():  # a file's temp published into the shard's temp folder
            files[0] += 1
            if files[0] == nth_file:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr("avsbridge.io.os.replace", replace_disk_full_at_nth)
    with pytest.raises(WriteError, match=r"shard_0: cannot write \(No space left on device\)"):
        _run(shard, backend="test-counting", backend_options={})
    assert files[0] == nth_file
    assert _files(shard["out"]) == before
    assert _leftovers(shard["out"]) == ["shard_0"]


def test_backend_is_loaded_once_per_shard(shard: dict[str, Any], tmp_path: Path) -> None:
    second = Clip(
        id="cat/clip_b",
        subset="demo-s4",
        split="test",
        category="dog_barking",
        frames=shard["clip"].frames[:2],
        audio=None,
        masks=(None, None),
    )
    (shard["prompt_dir"] / "cat__clip_b.json").write_text(
        json.dumps({"clip": second.id, "prompts": ["x", "y"]}), encoding="utf-8"
    )
    LOADS.clear()
    _run(shard, clips=[shard["clip"], second], backend="test-counting", backend_options={"k": 1})
    assert LOADS == [{"k": 1}]
    summary = read_json(shard["out"] / "_summary.json")
    assert summary["clips"]["cat/clip_b"]["frames"] == 2
    assert summary["clips"]["cat/clip_a"]["empty_frames"] == 1


def test_wrong_mask_size_is_an_error(shard: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"returned a \(3, 3\) mask"):
        _run(shard, backend="test-wrong-size", backend_options={})
    assert _leftovers(shard["out"]) == []


def test_unknown_backend_and_bad_threshold(shard: dict[str, Any]) -> None:
    with pytest.raises(UnknownBackendError, match="no-such-backend"):
        load_segmenter("no-such-backend", {})
    with pytest.raises(ValueError, match="box_threshold"):
        _run(shard, box_threshold=1.5)
