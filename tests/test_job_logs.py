"""Job logs: the traceback of a failed job, progress lines, and none of the known noise."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_segment_run import _run, shard  # noqa: F401  (fixture + helper)
from test_translate_run import alm_folder

from avsbridge.audio_text.run import describe_shard
from avsbridge.data.records import Clip
from avsbridge.io import write_png
from avsbridge.progress import Progress, format_duration
from avsbridge.translate.run import translate_shard

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


# --------------------------------------------------------------------------- tracebacks


def test_failed_job_leaves_its_traceback_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "segment" / "s0000.log"
    result = _python(
        "from avsbridge.pipeline import setup_logging\n"
        f"setup_logging({str(log)!r})\n"
        "import logging; logging.getLogger('avsbridge.test').info('started')\n"
        "def job():\n"
        "    raise ValueError('frames/x_3.png: unreadable image')\n"
        "job()\n"
    )
    assert result.returncode == 1
    text = log.read_text()
    assert "started" in text
    assert "job failed: ValueError: frames/x_3.png: unreadable image" in text
    assert "Traceback (most recent call last)" in text and "in job" in text
    # stderr (Snakemake's own output) still has Python's traceback, once
    assert result.stderr.count("Traceback (most recent call last)") == 1


def test_warnings_reach_the_job_log(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    result = _python(
        "from avsbridge.pipeline import setup_logging\n"
        f"setup_logging({str(log)!r})\n"
        "import warnings; warnings.warn('a.wav: audio is 3.2 s, shorter than 5 frames')\n"
    )
    assert result.returncode == 0
    assert "a.wav: audio is 3.2 s" in log.read_text()


# --------------------------------------------------------------------------- progress


def test_progress_lines_rate_eta_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = Progress(
        "segment s0001", 4, logger=logging.getLogger("t"), min_interval_s=10, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="t"):
        for step in (2.0, 2.0, 10.0, 2.0):
            now[0] += step
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "segment s0001: 1/4 clips (25%), 0.5 clips/s, ETA 6 s",
        "segment s0001: 3/4 clips (75%), 0.214 clips/s, ETA 5 s",
        "segment s0001: 4/4 clips (100%), 0.25 clips/s, took 16 s",
    ]
    assert format_duration(125) == "2 min 05 s" and format_duration(7620) == "2 h 07 min"


def _stereo_clip(tmp_path: Path, rate: int = 44100) -> Clip:
    frames = []
    for k in range(2):
        frames.append(tmp_path / f"f{k}.png")
        write_png(frames[-1], np.zeros((4, 4, 3), np.uint8))
    audio = tmp_path / "a.wav"
    t = np.arange(2 * rate) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(audio), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(np.repeat(pcm, 2).tobytes())
    return Clip("c/stereo", "s4", "test", "x", tuple(frames), audio, (None, None))


def test_audio_stage_logs_progress_and_announces_conversions(
    tmp_path: Path, weights_mirror: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = _stereo_clip(tmp_path)
    with caplog.at_level(logging.INFO, logger="avsbridge.audio_text"):
        describe_shard([clip, clip], "yamnet", {}, "caption", tmp_path / "out" / "s0000")
    lines = [r.getMessage() for r in caplog.records]
    assert "s0000: audio resampled to 16000 Hz for yamnet: 2 from 44100 Hz (of 2)" in lines
    assert "s0000: audio down-mixed to mono (mean of channels): 2 with 2 channels (of 2)" in lines
    progress = [line for line in lines if line.startswith("audio_text yamnet/caption s0000:")]
    assert progress and progress[-1].startswith("audio_text yamnet/caption s0000: 2/2 clips")


def test_segment_stage_logs_progress(
    shard: dict[str, Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="avsbridge.segment"):
        _run(shard, backend="test-counting", backend_options={})
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("segment test-counting shard_0: 1/1 clips") for line in lines)


def test_translate_stage_logs_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caption = alm_folder(tmp_path, "caption", ["a dog barks", ""])
    with caplog.at_level(logging.INFO, logger="avsbridge.translate"):
        translate_shard(
            {"caption": caption}, ["v__a"], "none", {}, "none", tmp_path / "c", tmp_path / "o"
        )
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("translate none/none o: 1/1 clips") for line in lines)


# --------------------------------------------------------------------------- noise


def test_yamnet_does_not_print_the_xnnpack_info_line(weights_mirror: Path) -> None:
    result = _python(
        "import sys\n"
        "from avsbridge.audio_text import AUDIO_TEXTERS\n"
        "AUDIO_TEXTERS.create('yamnet'); AUDIO_TEXTERS.create('yamnet')\n"
        "print('created', file=sys.stderr)\n",
        AVSBRIDGE_WEIGHTS_MIRROR=str(weights_mirror),
        AVSBRIDGE_OFFLINE="1",
    )
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr and "created" in result.stderr


def test_pyproject_licence_has_no_setuptools_deprecation(repo_root: Path) -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), str(repo_root / "pyproject.toml"))
    licence = [w for w in caught if "license" in str(w.message).lower()]
    assert not licence, [str(w.message)[:200] for w in licence]


def test_default_profile_prints_no_shell_command_none(tmp_path: Path, repo_root: Path) -> None:
    """Snakemake 9 logs ``Shell command: None`` for every script rule under printshellcmds."""
    (tmp_path / "Snakefile").write_text('rule a:\n    output: "a.txt"\n    script: "s.py"\n')
    (tmp_path / "s.py").write_text("open(snakemake.output[0], 'w').write('x')\n")
    snakemake = Path(sys.executable).with_name("snakemake")
    result = subprocess.run(
        [
            str(snakemake),
            "-n",
            "--cores",
            "1",
            "--profile",
            str(repo_root / "profiles" / "default"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "rule a" in output or "Rule: a" in output
    assert "Shell command: None" not in output
