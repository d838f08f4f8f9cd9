"""Bad input to the train family: errors name the file or epoch; nothing trained is lost."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from train_fixtures import make_clips, write_feature_shards, write_label_shards

from avsbridge.io import ArtifactError
from avsbridge.train import STUDENTS
from avsbridge.train import checkpoint as ck
from avsbridge.train.audio_features import feature_name, write_npy
from avsbridge.train.data import MissingInputError, make_samples
from avsbridge.train.jobs import pseudo_label_manifest
from avsbridge.train.loop import STATE, TrainingDivergedError, TrainSettings, train_student
from avsbridge.train.predict import load_student

DEMO = {"image_size": 32, "widths": (4, 8), "audio_hidden": 8, "audio_dim": 8}


@pytest.fixture()
def data(tmp_path):
    clips, truth = make_clips(tmp_path / "media", 4)
    labels = write_label_shards(tmp_path / "labels", clips, truth)
    feats = write_feature_shards(tmp_path / "feat", clips, 8)
    return tmp_path, clips, labels, feats


def _train(tmp, samples, epochs=1, student=None):
    student = student or STUDENTS.load_all().create("demo", **DEMO)
    out = tmp / "ckpt"
    settings = TrainSettings(epochs=epochs, batch_size=2, lr=1e-3, seed=0)
    train_student(student, settings, samples, [], out, {"options": student.options})
    return out


def test_missing_pseudo_label_shard_names_the_clips(data):
    tmp, clips, labels, feats = data
    shutil.rmtree(labels[1])  # the shard of clips 2 and 3
    with pytest.raises(
        MissingInputError, match=r"pseudo labels missing for 2 clip\(s\): clip_02, clip_03"
    ):
        make_samples(clips, feats, labels)
    with pytest.raises(ArtifactError, match="pseudo labels missing for 2 clip"):
        pseudo_label_manifest(clips, labels)


def test_missing_frame_label_and_bad_features_name_the_file(data):
    tmp, clips, labels, feats = data
    (labels[0] / "clip_01.2.png").unlink()
    with pytest.raises(ArtifactError, match=r"clip_01\.2\.png: pseudo label of frame 2"):
        make_samples(clips, feats, labels)
    write_npy(feats[0] / feature_name("clip_00"), np.full((3, 8), np.nan, np.float32))
    samples = make_samples(clips[:1], feats, [labels[0]])
    with pytest.raises(ArtifactError, match=r"clip_00\.npy: features contain NaN"):
        _train(tmp, samples)
    write_npy(feats[0] / feature_name("clip_00"), np.zeros((2, 8), np.float32))
    with pytest.raises(
        ArtifactError, match=r"clip_00\.npy: features have shape \[2, 8\], expected \[3, 8\]"
    ):
        _train(tmp, samples)


def test_corrupt_or_foreign_checkpoint_is_named(data):
    tmp, clips, labels, feats = data
    out = _train(tmp, make_samples(clips, feats, labels))
    with pytest.raises(
        ck.CheckpointError, match=r"config\.json: checkpoint of student 'demo', not 'tpavi'"
    ):
        load_student(out, "tpavi")
    weights = out / ck.WEIGHTS
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ck.CheckpointError, match=r"model\.safetensors: corrupt safetensors"):
        load_student(out, "demo")
    weights.write_bytes(good)
    # same student, other architecture options: the weights do not fit
    config = out / ck.CONFIG
    config.write_text(config.read_text().replace('"audio_hidden": 8', '"audio_hidden": 16'))
    with pytest.raises(ck.CheckpointError, match="weights do not fit the configured model"):
        load_student(out, "demo")
    with pytest.raises(ck.CheckpointError, match="checkpoint folder is missing"):
        load_student(tmp / "nowhere", "demo")


class _NaNAfterFirstEpoch:
    """The demo student whose loss turns NaN on the first step of epoch 2."""

    def __init__(self, steps_per_epoch: int) -> None:
        self.inner = STUDENTS.create("demo", **DEMO)
        self.calls, self.steps = 0, steps_per_epoch

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, output, batch):
        loss, parts = self.inner.loss(output, batch)
        self.calls += 1
        return (loss * float("nan"), parts) if self.calls > self.steps else (loss, parts)


def test_nan_loss_names_the_epoch_and_keeps_the_last_state(data):
    tmp, clips, labels, feats = data
    student = _NaNAfterFirstEpoch(steps_per_epoch=2)
    with pytest.raises(
        TrainingDivergedError, match=r"loss is nan at epoch 2 step 1; the state of epoch 1 is kept"
    ):
        _train(tmp, make_samples(clips, feats, labels), epochs=3, student=student)
    state = torch.load(ck.work_dir(tmp / "ckpt") / STATE, weights_only=False)
    assert state["epoch"] == 1 and not (tmp / "ckpt").exists()


def test_corrupt_resume_state_is_named_not_overwritten(data):
    tmp, clips, labels, feats = data
    work = ck.work_dir(tmp / "ckpt")
    work.mkdir(parents=True)
    (work / STATE).write_bytes(b"not a torch file")
    with pytest.raises(ck.CheckpointError, match=r"state\.pt: unreadable resume state"):
        _train(tmp, make_samples(clips, feats, labels))
    assert (work / STATE).read_bytes() == b"not a torch file"
