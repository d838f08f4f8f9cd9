"""`avsbridge data check`: every frame, mask and wav read once; every problem listed at once."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from test_data_adapters import (
    AVSS_ROWS,
    S4_ROWS,
    make_avss_tree,
    make_s4_tree,
    write_mask,
)
from typer.testing import CliRunner

from avsbridge.cli import app
from avsbridge.data.check import (
    DatasetCheckError,
    check_config_datasets,
    check_dataset,
    require_datasets_ok,
)

S4 = Path("Single-source") / "s4_data"
RUNNER = CliRunner()


def _write_raw_wav(path: Path, rate: int, channels: int, seconds: float) -> None:
    n = int(round(rate * seconds))
    pcm = (0.2 * np.sin(np.arange(n * channels) / 7.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(pcm.tobytes())


def _broken_s4(root: Path) -> dict[str, Path]:
    """An S4 tree with one problem of each kind, in different clips."""
    make_s4_tree(root, S4_ROWS)
    bad = {
        "frame": root / S4 / "visual_frames/val/dog_barking/dogB/dogB_3.png",
        "mask": root / S4 / "gt_masks/test/playing_piano/pianoA/pianoA_5.png",
        "empty_wav": root / S4 / "audio_wav/test/playing_piano/pianoA.wav",
        "short_wav": root / S4 / "audio_wav/val/dog_barking/dogB.wav",
        "rate_wav": root / S4 / "audio_wav/train/dog_barking/dogA.wav",
    }
    bad["frame"].write_bytes(b"not a png")
    write_mask(bad["mask"], size=(16, 12))
    bad["empty_wav"].write_bytes(b"")
    _write_raw_wav(bad["short_wav"], 16000, 1, 3.2)
    _write_raw_wav(bad["rate_wav"], 44100, 2, 5.0)
    return bad


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    bad = _broken_s4(tmp_path)
    report = check_dataset({"kind": "s4", "root": str(tmp_path), "split": None}, name="s4")
    lines = report.lines()
    by_file = {p.path: p for p in report.problems}
    assert not report.ok
    assert report.n_clips == len(S4_ROWS) and report.n_frames == 5 * len(S4_ROWS)
    # the unreadable frame: file, clip and frame named
    frame = by_file[str(bad["frame"])]
    assert (frame.clip, frame.frame) == ("dogB", 3) and "unreadable image" in frame.problem
    # the wrong-size GT: sizes and the frame it belongs to
    mask = by_file[str(bad["mask"])]
    assert (mask.clip, mask.frame) == ("pianoA", 5)
    assert "mask size 16x12 differs from frame size 32x24" in mask.problem
    # zero-byte wav says so (not "unreadable wav ()")
    assert "wav is empty (0 bytes)" in by_file[str(bad["empty_wav"])].problem
    # short audio
    assert any(
        p.path == str(bad["short_wav"]) and "3.200 s, shorter than its 5 frames" in p.problem
        for p in report.problems
    )
    # wrong rate and channels against the dataset's usual 16 kHz mono
    rate_lines = [line for line in lines if line.startswith(str(bad["rate_wav"]))]
    assert any("sample rate 44100 Hz, not 16000 Hz" in line for line in rate_lines)
    assert any("2 channel(s), not 1" in line for line in rate_lines)
    assert len(lines) == 6  # nothing reported twice, nothing missed
    assert all("(clip " in line for line in lines)


def test_resampling_and_downmix_announced_once(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS)
    for name, cat, split in S4_ROWS:
        _write_raw_wav(tmp_path / S4 / "audio_wav" / split / cat / f"{name}.wav", 44100, 2, 5.0)
    report = check_dataset(
        {"kind": "s4", "root": str(tmp_path)}, name="s4", target_rate=16000, target_name="yamnet"
    )
    assert report.ok, report.lines()
    assert report.notices == [
        f"audio resampled to 16000 Hz for yamnet: {len(S4_ROWS)} at 44100 Hz "
        f"(of {len(S4_ROWS)} wavs)",
        f"audio down-mixed to mono (mean of channels): {len(S4_ROWS)} with 2 channels",
    ]
    explicit = check_dataset({"kind": "s4", "root": str(tmp_path)}, sample_rate=16000)
    assert len(explicit.problems) == len(S4_ROWS)
    assert all("(expected)" in line for line in explicit.lines())


def test_avss_palette_masks_checked(tmp_path: Path) -> None:
    make_avss_tree(tmp_path, AVSS_ROWS)
    report = check_dataset({"kind": "avss", "root": str(tmp_path), "split": "test"}, name="avss")
    assert report.ok, report.lines()
    assert report.n_masks > 0


def test_missing_root_and_bad_metadata_are_one_problem(tmp_path: Path) -> None:
    missing = check_dataset({"kind": "s4", "root": str(tmp_path / "nowhere")}, name="s4")
    assert missing.lines() == [
        f"{tmp_path / 'nowhere'}: dataset root is missing (config key datasets.s4.root)"
    ]
    meta = make_s4_tree(tmp_path, S4_ROWS, media=False)
    meta.write_text("name,category,split\nx,dog,holiday\n")
    bad = check_dataset({"kind": "s4", "root": str(tmp_path)}, name="s4")
    assert len(bad.problems) == 1 and bad.problems[0].path == str(meta)


def test_require_raises_with_every_line(tmp_path: Path) -> None:
    _broken_s4(tmp_path)
    config = {
        "datasets": {"s4": {"kind": "s4", "root": str(tmp_path)}},
        "backends": {"alm": {"name": "yamnet"}},
    }
    with pytest.raises(DatasetCheckError) as caught:
        require_datasets_ok(config)
    assert str(caught.value).count("\n  ") == 6
    (report,) = check_config_datasets(config)
    # YAMNet reads 16 kHz: the one 44.1 kHz wav is announced as resampled
    assert report.notices[0].startswith("audio resampled to 16000 Hz for ALM yamnet: 1 at 44100")


def test_cli_exit_codes_and_lines(tmp_path: Path) -> None:
    bad = _broken_s4(tmp_path)
    result = RUNNER.invoke(app, ["data", "check", "--root", str(tmp_path), "--kind", "s4"])
    assert result.exit_code == 1, result.output
    assert str(bad["mask"]) in result.output and "clip pianoA, frame 5" in result.output
    good = tmp_path / "good"
    make_s4_tree(good, S4_ROWS)
    ok = RUNNER.invoke(app, ["data", "check", "--root", str(good), "--kind", "s4", "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"ok": true' in ok.output
    usage = RUNNER.invoke(app, ["data", "check", "--root", str(good)])
    assert usage.exit_code == 2


def test_demo_profile_is_clean_from_any_cwd(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # dataset roots resolve against the project, not the CWD
    result = RUNNER.invoke(app, ["data", "check"])
    assert result.exit_code == 0, result.output
    assert f"s4 ({repo_root / 'data' / 'demo'}): " in result.output
    assert "wavs read: ok" in result.output


def test_data_check_job_writes_report_or_fails_with_every_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from avsbridge.data.check import data_check_job
    from avsbridge.io import read_json

    good, bad = tmp_path / "good", tmp_path / "bad"
    make_s4_tree(good, S4_ROWS)
    _broken_s4(bad)
    config = {
        "datasets": {
            "s4": {"kind": "s4", "root": str(good)},
            "s4bad": {"kind": "s4", "root": str(bad)},
        },
        "backends": {"alm": {"name": "yamnet"}},
    }
    out = tmp_path / "checks" / "s4.json"
    data_check_job(config, "s4", out)
    assert read_json(out)["ok"] is True
    with caplog.at_level("ERROR", logger="avsbridge.data.check"):
        with pytest.raises(DatasetCheckError):
            data_check_job(config, "s4bad", tmp_path / "checks" / "s4bad.json")
    assert len(caplog.records) == 6
    assert not (tmp_path / "checks" / "s4bad.json").exists()
