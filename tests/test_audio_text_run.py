"""describe_shard end to end: per-clip JSONs, summary, one model load, atomic failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avsbridge.audio_text import AUDIO_TEXTERS
from avsbridge.audio_text.run import SUMMARY_NAME, describe_shard
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_json, read_wav, sha256_file, write_png, write_wav


class CountingTexter:
    """A backend that records how it was created and called."""

    name = "test-counting"
    sample_rate = 8_000
    created = 0
    calls: list[int] = []

    def __init__(self, **options: Any) -> None:
        type(self).created += 1
        self.options = options

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "options": self.options}

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        type(self).calls.append(len(windows))
        return [f"{prompt}:{len(w)}" for w in windows]


if "test-counting" not in AUDIO_TEXTERS:
    AUDIO_TEXTERS.register("test-counting")(CountingTexter)


def make_clip(root: Path, clip_id: str, samples: np.ndarray, rate: int, n_frames: int) -> Clip:
    folder = root / clip_id.replace("/", "__")
    frames = []
    for i in range(n_frames):
        frame = folder / "frames" / f"{i}.png"
        write_png(frame, np.full((8, 8, 3), 40 * i, dtype=np.uint8))
        frames.append(frame)
    audio = folder / "audio.wav"
    write_wav(audio, samples, rate)
    return Clip(
        id=clip_id,
        subset="demo-s4",
        split="test",
        category="demo",
        frames=tuple(frames),
        audio=audio,
        masks=(None,) * n_frames,
    )


@pytest.fixture
def demo_clip(tmp_path: Path, shared_media: Path) -> Clip:
    speech, rate = read_wav(shared_media / "speech.wav")
    bird, bird_rate = read_wav(shared_media / "two_heads.wav")
    assert rate == bird_rate == 16_000
    bird_second = np.zeros(rate, dtype=np.float32)
    bird_second[: len(bird)] = bird
    samples = np.concatenate([speech[: 2 * rate], np.zeros(rate, dtype=np.float32), bird_second])
    return make_clip(tmp_path / "media", "s4/speech_then_bird", samples, rate, 4)


def test_yamnet_shard_end_to_end(demo_clip: Clip, tmp_path: Path, weights_mirror: Path) -> None:
    out = tmp_path / "audio_text" / "shard-000"
    describe_shard([demo_clip], "yamnet", {"top_k": 3}, "caption", out)
    assert sorted(p.name for p in out.iterdir()) == [SUMMARY_NAME, "s4__speech_then_bird.json"]
    record = read_json(out / "s4__speech_then_bird.json")
    assert record["clip"] == "s4/speech_then_bird"
    assert record["prompt_key"] == "caption" and record["prompt"] == "Generate audio caption"
    assert record["alm_calls"] == 4 and len(record["texts"]) == 4
    assert record["audio_sha256"] == sha256_file(demo_clip.audio)
    assert record["backend"]["backend"] == "yamnet"
    assert record["backend"]["decoding"]["top_k"] == 3
    speech_1, speech_2, silence, bird = record["texts"]
    assert "speak" in speech_1 and "speak" in speech_2
    assert silence == ""
    assert "bird" in bird
    summary = read_json(out / SUMMARY_NAME)
    assert summary["n_clips"] == 1 and summary["n_frames"] == 4 and summary["alm_calls"] == 4
    assert summary["empty_texts"] == 1
    assert "timing" not in summary  # timings go to the log
    # a re-run writes the same bytes (an interrupted run's re-run equals a clean run)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    describe_shard([demo_clip], "yamnet", {"top_k": 3}, "caption", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_corrupt_wav_names_file_and_leaves_nothing(
    demo_clip: Clip, tmp_path: Path, weights_mirror: Path
) -> None:
    bad = make_clip(tmp_path / "media", "s4/broken", np.zeros(16_000, np.float32), 16_000, 1)
    assert bad.audio is not None
    bad.audio.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    out = tmp_path / "audio_text" / "shard-001"
    with pytest.raises(ArtifactError) as err:
        describe_shard([demo_clip, bad], "yamnet", {}, "caption", out)
    assert err.value.path == bad.audio
    assert str(bad.audio) in str(err.value)
    assert not out.exists()
    assert not (tmp_path / "audio_text").exists() or not list((tmp_path / "audio_text").iterdir())


def test_failed_rerun_keeps_previous_folder(demo_clip: Clip, tmp_path: Path) -> None:
    out = tmp_path / "shard"
    describe_shard([demo_clip], "test-counting", {}, "metadata", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    class Boom(RuntimeError):
        pass

    def explode(self: CountingTexter, windows: list[np.ndarray], prompt: str) -> list[str]:
        raise Boom("model crashed mid-shard")

    original = CountingTexter.describe
    CountingTexter.describe = explode  # type: ignore[method-assign]
    try:
        with pytest.raises(Boom):
            describe_shard([demo_clip], "test-counting", {}, "metadata", out)
    finally:
        CountingTexter.describe = original  # type: ignore[method-assign]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "media") == ["shard"]


def test_backend_loaded_once_frames_batched_and_resampled(tmp_path: Path) -> None:
    clips = [
        make_clip(tmp_path, f"ms3/clip{i}", np.full(5 * 16_000, 0.1, np.float32), 16_000, 5)
        for i in range(3)
    ]
    CountingTexter.created = 0
    CountingTexter.calls = []
    out = tmp_path / "out"
    describe_shard(clips, "test-counting", {"beam": 2}, "soundof", out, frames_per_call=4)
    assert CountingTexter.created == 1
    assert CountingTexter.calls == [4, 4, 4, 3]  # 15 frames of 3 clips, batched across clips
    record = read_json(out / "ms3__clip1.json")
    # windows arrive at the backend's own rate (8 kHz): 1 s -> 8000 samples
    assert record["texts"] == ["This is a sound of:8000"] * 5
    assert record["backend"] == {"backend": "test-counting", "options": {"beam": 2}}
    assert read_json(out / SUMMARY_NAME)["alm_calls"] == 15


def test_clip_without_audio_and_unknown_prompt(tmp_path: Path, demo_clip: Clip) -> None:
    mute = Clip("s4/mute", "demo-s4", "test", "demo", demo_clip.frames, None, (None,) * 4)
    with pytest.raises(ArtifactError, match="no audio"):
        describe_shard([mute], "test-counting", {}, "caption", tmp_path / "a")
    with pytest.raises(KeyError, match="known"):
        describe_shard([demo_clip], "test-counting", {}, "story", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
