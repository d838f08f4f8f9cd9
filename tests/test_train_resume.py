"""kill -9 during training, re-run: resumes from the last finished epoch, and on CPU with a
fixed seed the final weights equal an uninterrupted run's byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from avsbridge.io import read_json
from avsbridge.train import checkpoint as ck
from avsbridge.train.loop import KILL_ENV, STATE

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import logging, sys
from pathlib import Path
sys.path[:0] = [{src!r}, {tests!r}]
logging.basicConfig(level=logging.INFO, format="%(message)s")
from train_fixtures import make_clips, write_feature_shards, write_label_shards
from avsbridge.train import STUDENTS
from avsbridge.train.data import make_samples
from avsbridge.train.loop import TrainSettings, train_student
root, out = Path(sys.argv[1]), Path(sys.argv[2])
clips, truth = make_clips(root / "media", 4)
labels = write_label_shards(root / "labels", clips, truth)
student = STUDENTS.load_all().create(
    "demo", image_size=32, widths=(4, 8), audio_hidden=8, audio_dim=8
)
feats = write_feature_shards(root / "feat", clips, 8)
samples = make_samples(clips, feats, labels)
settings = TrainSettings(epochs=3, batch_size=2, lr=1e-2, seed=7, threads=1, val_clips=1)
train_student(student, settings, samples[:3], samples[3:], out, {{"options": student.options}})
"""


def _run(tmp: Path, out: Path, kill_after: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(KILL_ENV, None)
    if kill_after:
        env[KILL_ENV] = str(kill_after)
    code = SCRIPT.format(src=str(REPO / "src"), tests=str(REPO / "tests"))
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_resume_after_sigkill_is_byte_identical(tmp_path):
    plain = _run(tmp_path, tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr

    killed_out = tmp_path / "killed"
    killed = _run(tmp_path, killed_out, kill_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not killed_out.exists()  # no half-written checkpoint folder
    state = torch.load(ck.work_dir(killed_out) / STATE, weights_only=False)
    assert state["epoch"] == 2

    resumed = _run(tmp_path, killed_out)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "from epoch 2/3" in resumed.stderr
    assert "epoch 1/3" not in resumed.stderr  # no epoch repeated
    assert (killed_out / ck.WEIGHTS).read_bytes() == (tmp_path / "plain" / ck.WEIGHTS).read_bytes()
    assert read_json(killed_out / ck.METRICS) == read_json(tmp_path / "plain" / ck.METRICS)
    assert [m["epoch"] for m in read_json(killed_out / ck.METRICS)] == [1, 2, 3]
    live = killed_out / ck.DVCLIVE / "plots" / "metrics" / "train" / "loss.tsv"
    assert (
        live.read_text()
        == (tmp_path / "plain" / ck.DVCLIVE / "plots/metrics/train/loss.tsv").read_text()
    )
    assert not ck.work_dir(killed_out).exists()
