"""Each student end to end with a tiny random config: train, save, resume, predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_fixtures import SIZE, make_clips, write_feature_shards, write_label_shards

from avsbridge.io import read_json, read_prob_png
from avsbridge.segment.run import boxes_name, mask_name
from avsbridge.train import STUDENTS
from avsbridge.train import checkpoint as ck
from avsbridge.train.data import make_samples
from avsbridge.train.loop import STATE, TrainSettings, resolve, train_student
from avsbridge.train.predict import load_student, predict_shard

TINY_PVT = {
    "depths": (1, 1, 1, 1),
    "embed_dims": (8, 16, 20, 32),
    "num_heads": (1, 2, 5, 8),
    "mlp_ratios": (2, 2, 2, 2),
    "sr_ratios": (8, 4, 2, 1),
}
TINY = {
    "demo": {"image_size": 32, "widths": (4, 8), "audio_hidden": 8, "audio_dim": 8},
    "tpavi": {
        "image_size": 32,
        "channel": 8,
        "backbone": TINY_PVT,
        "pretrained": False,
        "supervised_frames": "all",
        "masked_av": True,
    },
    "avsegformer": {
        "image_size": 32,
        "embed_dim": 32,
        "query_num": 4,
        "num_heads": 4,
        "ffn_dim": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "generator_layers": 1,
        "generator_hidden": 32,
        "mlp_hidden": 8,
        "backbone": TINY_PVT,
        "pretrained": False,
        "freeze_epochs": 1,
    },
    "sama_avs": {
        "image_size": 32,
        "encoder": {
            "embed_dim": 16,
            "depth": 2,
            "num_heads": 2,
            "global_attn_indexes": [1],
            "window_size": 1,
            "patch_size": 8,
            "out_chans": 16,
        },
        "audio_hidden": 8,
        "decoder_mlp": 16,
        "decoder_heads": 2,
        "iou_hidden": 8,
        "pretrained": False,
    },
}


@pytest.fixture()
def data(tmp_path):
    clips, truth = make_clips(tmp_path / "media", 4)
    labels = write_label_shards(tmp_path / "labels", clips, truth)
    return tmp_path, clips, labels


@pytest.mark.parametrize("name", ["demo", "tpavi", "avsegformer", "sama_avs"])
def test_student_trains_saves_resumes_predicts(data, name):
    tmp, clips, labels = data
    student = STUDENTS.load_all().create(name, **TINY[name])
    features = write_feature_shards(tmp / "feat", clips, student.audio_dim)
    samples = make_samples(clips, features, labels)
    settings = TrainSettings(epochs=1, batch_size=2, lr=1e-3, seed=0, val_clips=1)
    out = tmp / "ckpt"
    summary = train_student(
        student, settings, samples[:3], samples[3:], out, {"options": student.options}
    )
    for part in (ck.WEIGHTS, ck.STATE, ck.CONFIG, ck.METRICS, ck.SUMMARY):
        assert (out / part).is_file(), part
    assert (out / ck.DVCLIVE / "metrics.json").is_file()
    metrics = read_json(out / ck.METRICS)
    assert [m["epoch"] for m in metrics] == [1] and np.isfinite(metrics[0]["train/loss"])
    assert 0.0 <= metrics[0]["val/miou"] <= 1.0
    assert summary["student"] == name and not ck.work_dir(out).exists()

    # resume: one more epoch continues from the saved state (state -> work dir, epochs=2)
    work = ck.work_dir(out)
    work.mkdir()
    state = torch.load(out / ck.STATE, weights_only=False)
    resolved = {"options": student.options}
    settings2 = TrainSettings(epochs=2, batch_size=2, lr=1e-3, seed=0, val_clips=1)
    from avsbridge.io import content_key

    state["config_key"] = content_key(
        {
            **resolved,
            "options": student.options,
            "settings": settings2.__dict__,
            "student": student.name,
        }
    )
    torch.save(state, work / STATE)
    train_student(student, settings2, samples[:3], samples[3:], out, resolved)
    assert [m["epoch"] for m in read_json(out / ck.METRICS)] == [1, 2]
    assert read_json(out / ck.DVCLIVE / "metrics.json")["step"] == 1

    loaded_student, model = load_student(out, name)
    assert loaded_student.options == student.options
    pred = tmp / "pred" / "s0000"
    predict_shard(clips[:2], out, name, features, pred)
    for clip in clips[:2]:
        boxes = read_json(pred / boxes_name(clip.slug))
        assert set(boxes["frames"]) == {"1", "2", "3"}
        for k in range(1, clip.n_frames + 1):
            prob = read_prob_png(pred / mask_name(clip.slug, k))
            assert prob.shape == (SIZE, SIZE + 8)  # the frame's own size
    assert read_json(pred / "_summary.json")["identity"]["weights_sha256"]


def test_resolve_merges_recipe_params_and_kind():
    cls = STUDENTS.load_all().get("tpavi")
    options, hyper = resolve(
        cls, "ms3", {"lr": 5e-5, "options": {"channel": 64}, "ms3": {"epochs": 3}}
    )
    assert hyper == {"epochs": 3, "batch_size": 4, "lr": 5e-5}
    assert options["masked_av"] is True and options["lambda_1"] == 0.5 and options["channel"] == 64
    options, hyper = resolve(cls, "s4", None)
    assert hyper["epochs"] == 15 and "masked_av" not in options


def test_registry_declares_gpu_students():
    reg = STUDENTS.load_all()
    assert reg.needs("tpavi").gpu and not reg.needs("demo").gpu
    assert reg.check_options("tpavi", {"channel": 1, "nope": 2}) == ["nope"]
    json.dumps(reg.create("tpavi", pretrained=False).identity())


def test_training_curve_figure(data):
    from avsbridge.train.curves import plot_training_curves

    tmp, clips, labels = data
    student = STUDENTS.load_all().create("demo", **TINY["demo"])
    features = write_feature_shards(tmp / "feat", clips, student.audio_dim)
    samples = make_samples(clips, features, labels)
    settings = TrainSettings(epochs=2, batch_size=2, lr=1e-3, seed=0, val_clips=1)
    out = tmp / "ckpt"
    train_student(student, settings, samples[:3], samples[3:], out, {})
    png = tmp / "curve.png"
    plot_training_curves({"demo seed 0": out}, png, "demo student")
    first = png.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    plot_training_curves({"demo seed 0": out}, png, "demo student")
    assert png.read_bytes() == first


def _official_pvt_key(key: str) -> str:
    """timm PVT-v2 key -> the official PVT release's (the inverse of timm's filter)."""
    import re

    key = key.replace("patch_embed.", "patch_embed1.")
    key = re.sub(r"stages\.(\d+)\.downsample\.", lambda m: f"patch_embed{int(m[1]) + 1}.", key)
    key = re.sub(r"stages\.(\d+)\.blocks\.(\d+)\.", lambda m: f"block{int(m[1]) + 1}.{m[2]}.", key)
    key = re.sub(r"stages\.(\d+)\.norm\.", lambda m: f"norm{int(m[1]) + 1}.", key)
    return key.replace("mlp.dwconv.", "mlp.dwconv.dwconv.")


def test_avsegformer_official_checkpoint_layout_loads():
    """A DataParallel checkpoint in the official naming (PVT keys of the official release,
    its frozen VGGish weights) loads into the native model, tensor for tensor."""
    from avsbridge.train.students.avsegformer import load_official_state_dict

    student = STUDENTS.load_all().create("avsegformer", **TINY["avsegformer"])
    torch.manual_seed(3)
    source, target = student.build(), student.build()
    official = {}
    for key, value in source.state_dict().items():
        if key.startswith("backbone."):
            key = "backbone." + _official_pvt_key(key.removeprefix("backbone."))
        official["module." + key] = value
    official["module.vggish.features.0.weight"] = torch.zeros(64, 1, 3, 3)
    load_official_state_dict(target, official)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value, rtol=0, atol=0)


def test_avsegformer_backbone_frozen_for_first_epochs(data):
    tmp, clips, labels = data
    student = STUDENTS.load_all().create("avsegformer", **TINY["avsegformer"])
    features = write_feature_shards(tmp / "feat", clips, student.audio_dim)
    samples = make_samples(clips, features, labels)
    torch.manual_seed(0)
    initial = {k: v.clone() for k, v in student.build().state_dict().items()}
    out = tmp / "ckpt"
    settings = TrainSettings(epochs=1, batch_size=2, lr=1e-2, seed=0)
    train_student(student, settings, samples, [], out, {})
    from avsbridge.train.predict import load_student

    _, model = load_student(out, "avsegformer")
    trained = model.state_dict()
    assert all(torch.equal(trained[k], initial[k]) for k in initial if k.startswith("backbone."))
    assert not torch.equal(trained["audio_proj.weight"], initial["audio_proj.weight"])


def test_sama_loads_sam_weights_trains_only_adapter_and_decoder(data, tmp_path):
    from avsbridge.train.students.sama_avs import load_official_state_dict, load_sam

    student = STUDENTS.load_all().create("sama_avs", **TINY["sama_avs"])
    torch.manual_seed(5)
    sam_like = student.build()
    sam_file = (
        tmp_path / "sam_tiny.pth"
    )  # SAM's own checkpoint keys: image_encoder.*, mask_decoder.*
    torch.save(
        {k: v for k, v in sam_like.state_dict().items() if "prompt_generator" not in k}
        | {"prompt_encoder.no_mask_embed.weight": torch.zeros(1, 16)},
        sam_file,
    )
    model = student.build()
    missing = load_sam(model, str(sam_file))
    assert any(k.startswith("image_encoder.prompt_generator.") for k in missing)
    assert "no_mask_embed.weight" not in missing  # same key name at top level in this fixture
    torch.testing.assert_close(
        model.state_dict()["image_encoder.blocks.0.attn.qkv.weight"],
        sam_like.state_dict()["image_encoder.blocks.0.attn.qkv.weight"],
    )
    official = {f"module.{k}": v for k, v in sam_like.state_dict().items()}
    official["module.audio_encoder.audio_backbone.features.0.weight"] = torch.zeros(1)
    load_official_state_dict(model, official)

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(
        n.startswith(("image_encoder.prompt_generator.", "mask_decoder.", "no_mask_embed"))
        for n in trainable
    )
    assert any(n.startswith("mask_decoder.") for n in trainable)
    assert student.lr_at(0, 80, 2e-4) == pytest.approx(2e-4)
    assert student.lr_at(80, 80, 2e-4) == pytest.approx(1e-7)
    assert student.lr_at(40, 80, 2e-4) == pytest.approx((2e-4 + 1e-7) / 2)
