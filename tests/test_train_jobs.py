"""The OpenAVS-ST stage jobs on the committed demo benchmark, through JobContexts.

Real parts: the demo clips (data/demo), YAMNet scores from the weights mirror.
Pseudo labels are written in the segment stage's layout (here: the GT mask of
frame 1 for every frame) -- the segment stage itself is tested elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avsbridge.io import read_image, read_json, write_prob_png
from avsbridge.pipeline import dataset_clips, evaluate_job, object_mask_reader, shard_names
from avsbridge.provenance.records import read_record
from avsbridge.segment.run import boxes_name, mask_name
from avsbridge.stages import JobContext
from avsbridge.train import checkpoint as ck
from avsbridge.train.audio_features import AUDIO_FEATURES, features_shard, read_features
from avsbridge.train.jobs import audio_features_job, predict_job, pseudo_labels_job, train_job

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
TRAIN = {
    "device": "cpu",
    "threads": 1,
    "val_clips": 2,
    "students": {"demo": {"epochs": 1, "options": {"image_size": 32, "widths": [4, 8]}}},
}


def _config(tmp: Path) -> dict:
    ds = {"kind": "s4", "root": str(DEMO), "shard_size": 6}
    return {
        "profile": "test",
        "results_dir": str(tmp),
        "datasets": {"s4": {**ds, "split": "test"}, "s4_train": {**ds, "split": "train"}},
        "evaluation": {"batch_size": 4},
        "train": TRAIN,
    }


def _ctx(config, wildcards, inputs, output, params=None):
    return JobContext(config, wildcards, inputs, Path(output), params or {"train": TRAIN}, None)


def test_stage_jobs_end_to_end_on_the_demo(tmp_path):
    config = _config(tmp_path)
    feats: dict[str, list[Path]] = {}
    for dataset in ("s4_train", "s4"):
        feats[dataset] = []
        for shard in shard_names(config, dataset):
            out = tmp_path / "features" / dataset / "yamnet-scores" / shard
            w = {"dataset": dataset, "afeat": "yamnet-scores", "shard": shard}
            audio_features_job(_ctx(config, w, {}, out))
            feats[dataset].append(out)
    clip = dataset_clips(config, "s4")[0]
    assert read_features(feats["s4"][0], clip, 521).shape == (5, 521)
    assert read_record(feats["s4"][0])["identity"]["weights_sha256"]

    # teacher masks on the train split, in the segment layout
    read_gt = object_mask_reader(config, "s4_train")
    labels = []
    for shard in shard_names(config, "s4_train"):
        folder = tmp_path / "masks" / "s4_train" / shard
        from avsbridge.pipeline import shard_clips

        for c in shard_clips(config, "s4_train", shard):
            for k in range(1, c.n_frames + 1):
                write_prob_png(folder / mask_name(c.slug, k), read_gt(c.masks[0]))
            (folder / boxes_name(c.slug)).write_text(json.dumps({"frames": {}}))
        labels.append(folder)
    manifest = tmp_path / "pseudo" / "s4_train.json"
    pseudo_labels_job(
        _ctx(config, {"dataset": "s4_train", "vfm": "sam"}, {"masks": labels}, manifest)
    )
    info = read_json(manifest)
    assert info["n_clips"] == 12 and info["n_frames"] == 60 and 0 < info["mean_foreground"] < 1

    ckpt = tmp_path / "models" / "s4" / "demo" / "seed0"
    w = {"student": "demo", "dataset": "s4", "seed": "0", "vfm": "sam"}
    inputs = {"labels": labels, "features": feats["s4_train"], "pseudo": [manifest]}
    train_job(_ctx(config, w, inputs, ckpt))
    cfg = read_json(ckpt / ck.CONFIG)
    assert cfg["labels"] == "pseudo" and len(cfg["val_clips"]) == 2 and cfg["hyper"]["epochs"] == 1
    record = read_record(ckpt)
    assert record["checkpoint"]["weights_sha256"] == read_json(ckpt / ck.SUMMARY)["weights_sha256"]

    preds = []
    for shard, feat in zip(shard_names(config, "s4"), feats["s4"], strict=True):
        out = tmp_path / "stmasks" / "s4" / shard
        ws = {"student": "demo", "dataset": "s4", "shard": shard}
        predict_job(_ctx(config, ws, {"checkpoint": [ckpt], "features": [feat]}, out))
        preds.append(out)
    frame = read_image(clip.frames[0])
    assert read_image(preds[0] / mask_name(clip.slug, 1), mode="L").shape == frame.shape[:2]

    metrics = tmp_path / "metrics.json"
    evaluate_job(_ctx(config, {"dataset": "s4"}, {"masks": preds, "text": []}, metrics, {}))
    result = read_json(metrics)
    assert result["n_frames"] == 60 and 0.0 <= result["miou"] <= 1.0


def test_train_job_on_ground_truth_upper_bound(tmp_path):
    """No ``labels`` input: the benchmark masks (S4 train: frame 1 only, others invalid)."""
    config = _config(tmp_path)
    feats = []
    for shard in shard_names(config, "s4_train"):
        out = tmp_path / "f" / shard
        features_shard(
            [c for c in dataset_clips(config, "s4_train")][int(shard[1:]) * 6 :][:6],
            "yamnet-scores",
            {},
            out,
        )
        feats.append(out)
    ckpt = tmp_path / "gt"
    w = {"student": "demo", "dataset": "s4", "seed": "1", "teacher": "gt"}
    train_job(_ctx(config, w, {"features": feats}, ckpt))
    assert read_json(ckpt / ck.CONFIG)["labels"] == "ground truth"


def test_vggish_features_with_random_weights(tmp_path):
    from torchvggish.torchvggish import VGG, make_layers

    from avsbridge.io import write_wav

    torch.manual_seed(0)
    weights = tmp_path / "vggish_random.pth"
    torch.save(VGG(make_layers(), postprocess=False).state_dict(), weights)
    rng = np.random.default_rng(0)
    wav = tmp_path / "a.wav"
    write_wav(wav, rng.uniform(-0.5, 0.5, 22050 * 5).astype(np.float32), 22050)
    from avsbridge.data.records import Clip

    clip = Clip(
        "c/1", "s4", "train", "x", tuple(Path(f"{k}.png") for k in range(5)), wav, (None,) * 5
    )
    summary = features_shard([clip], "vggish", {"model_path": str(weights)}, tmp_path / "out")
    feats = read_features(tmp_path / "out", clip, 128)
    assert feats.shape == (5, 128) and feats.std() > 0
    assert summary["identity"]["dim"] == 128
    assert AUDIO_FEATURES.needs("vggish").options >= {"model_path", "device"}
    with pytest.raises(Exception, match="not VGGish weights"):
        torch.save({"x": torch.zeros(1)}, weights)
        AUDIO_FEATURES.create("vggish", model_path=str(weights))
