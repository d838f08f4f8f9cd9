"""Errors name the file (and clip, frame) and the problem: wavs, YAML, wrong-size GT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avsbridge.audio_text.run import describe_shard
from avsbridge.config import ConfigError, load_config
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_wav, read_yaml, write_png, write_prob_png
from avsbridge.metrics.avsbench import score_avsbench
from avsbridge.metrics.evaluate import read_clip_frames
from avsbridge.segment.run import mask_name

# --------------------------------------------------------------------------- wavs


def test_zero_byte_wav_says_empty(tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"clip\.wav: wav is empty \(0 bytes\)$"):
        read_wav(wav)


def test_truncated_wav_says_truncated(tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF\x24\x00")
    with pytest.raises(ArtifactError, match=r"truncated wav \(6 bytes"):
        read_wav(wav)


def test_zero_byte_wav_inside_the_audio_stage(tmp_path: Path) -> None:
    frames = []
    for k in range(2):
        frames.append(tmp_path / f"f{k}.png")
        write_png(frames[-1], np.zeros((4, 4, 3), np.uint8))
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    clip = Clip("c/x", "s4", "test", "dog", tuple(frames), wav, (None, None))
    with pytest.raises(ArtifactError) as caught:
        describe_shard([clip], "yamnet", {}, "caption", tmp_path / "out")
    assert str(caught.value) == f"{wav}: wav is empty (0 bytes)"


# --------------------------------------------------------------------------- YAML


def test_config_yaml_syntax_error_names_file_and_line(tmp_path: Path, repo_root: Path) -> None:
    bad = tmp_path / "paper.yaml"
    bad.write_text("profile: paper\ndatasets:\n  s4: {kind: s4\n  ms3: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, repo_root / "params.yaml")
    message = str(caught.value)
    assert message.startswith(f"{bad}: line 4, column 6: not valid YAML (")
    assert "flow mapping started at line 3" in message
    assert "<unicode string>" not in message and "\n" not in message


def test_read_yaml_helper(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("vfm:\n  box_threshold: 0.25\n\tsweep: [1]\n")
    with pytest.raises(ArtifactError, match=r"params\.yaml: line 3, column 1: not valid YAML"):
        read_yaml(bad)
    with pytest.raises(ArtifactError, match="file is missing"):
        read_yaml(tmp_path / "nope.yaml")


def test_state_cli_config_yaml_error(tmp_path: Path) -> None:
    from avsbridge.provenance.state_cli import app

    bad = tmp_path / "config.yaml"
    bad.write_text("results_dir: [unclosed\n")
    result = CliRunner().invoke(app, ["export", "--config", str(bad), "--workdir", str(tmp_path)])
    assert result.exit_code != 0
    assert "line 2" in result.output and "not valid YAML" in result.output


# --------------------------------------------------------------------------- wrong-size GT


def _eval_clip(tmp_path: Path, gt_size: tuple[int, int]) -> tuple[Clip, Path]:
    frames, masks = [], []
    for k in range(1, 4):
        frames.append(tmp_path / "frames" / f"x_{k}.png")
        write_png(frames[-1], np.zeros((24, 32, 3), np.uint8))
        masks.append(tmp_path / "gt" / f"x_{k}.png")
        w, h = gt_size if k == 2 else (32, 24)
        write_png(masks[-1], np.zeros((h, w), np.uint8))
    clip = Clip("cat/x", "s4", "test", "cat", tuple(frames), None, tuple(masks))
    pred_dir = tmp_path / "masks" / "s0000"
    for k in range(1, 4):
        write_prob_png(pred_dir / mask_name(clip.slug, k), np.zeros((24, 32), np.float32))
    return clip, pred_dir


def test_wrong_size_gt_in_the_evaluate_step_names_file_clip_frame(tmp_path: Path) -> None:
    clip, pred_dir = _eval_clip(tmp_path, gt_size=(16, 12))
    with pytest.raises(ArtifactError) as caught:
        read_clip_frames([clip], {clip.slug: pred_dir})
    message = str(caught.value)
    assert caught.value.path == clip.masks[1]
    assert "clip cat/x, frame 2: GT mask is 16x12 but the prediction" in message
    assert "is 32x24" in message and f"frame {clip.frames[1]}: 32x24" in message


def test_score_with_frame_names_names_the_file(tmp_path: Path) -> None:
    clip, pred_dir = _eval_clip(tmp_path, gt_size=(32, 24))
    preds, gts, names = read_clip_frames([clip], {clip.slug: pred_dir})
    assert names[1] == f"{clip.masks[1]} (clip cat/x, frame 2)"
    gts[1] = np.zeros((12, 16), np.float32)
    with pytest.raises(ValueError) as caught:
        score_avsbench(preds, gts, frame_names=names)
    assert str(caught.value).startswith(f"{clip.masks[1]} (clip cat/x, frame 2): prediction size")
