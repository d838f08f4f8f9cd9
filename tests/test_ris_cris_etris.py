"""CRIS and ETRIS RIS backends through the official code, offline, with random weights.

Each model is built with the official code from a tiny config (the published YAML with
``--opts``-style overrides of the dims the code lets shrink), from a random CLIP made by the
checkout's own ``model.clip.CLIP`` class and saved as TorchScript (``CRIS.__init__`` reads
``torch.jit.load(cfg.clip_pretrain)``, as OpenAI ships ``RN50.pt``), and a random
checkpoint in train.py's format (``{"state_dict": ...}`` of the DDP model, ``module.``
keys). The adapter's map thresholded at 0.35 is checked against the mask the checkouts'
own ``engine.inference`` scores. The code is read from ``AVSBRIDGE_CRIS_HOME`` /
``AVSBRIDGE_ETRIS_HOME`` (default ``../shared/upstream/CRIS.pytorch`` /
``../shared/upstream/ETRIS``); the tests skip when it is absent (CI's shared/ has neither
checkout).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from avsbridge.io import ArtifactError, read_image, sha256_file
from avsbridge.ris import RIS_MODELS, threshold_of
from avsbridge.ris._cris_family import official_code

REPO = Path(__file__).resolve().parents[1]
SHARED_UPSTREAM = REPO.parent / "shared" / "upstream"
DEMO_IMAGE = REPO / "data" / "demo" / "zeroshot" / "images" / "demo_is3_000.jpg"
INPUT_SIZE = 64  # a multiple of 32 (ResNet C5 stride); the published configs use 416

# Tiny CRIS: ResNet width 8 (C3/C4/C5 = 64/128/256 channels), CLIP embed 64, text width 64
# (one head: CLIP's build_model sets heads = width // 64), decoder d_model = text width.
CRIS_CLIP = dict(
    embed_dim=64,
    image_resolution=INPUT_SIZE,
    vision_layers=(1, 1, 1, 1),
    vision_width=8,
    vision_patch_size=None,
    context_length=77,
    txt_length=17,
    vocab_size=49408,  # the tokenizer's ids reach 49407 (end of text)
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
)
CRIS_OPTS = [
    *("TRAIN.fpn_in", "[64, 128, 64]", "TRAIN.fpn_out", "[32, 64, 128]"),
    *("TRAIN.vis_dim", "64", "TRAIN.word_dim", "64", "TRAIN.num_head", "2"),
    *("TRAIN.dim_ffn", "64", "TRAIN.num_layers", "1", "TRAIN.input_size", str(INPUT_SIZE)),
]
# Tiny ETRIS: its Bridger_RN hard-codes image dims 512/1024/2048 (ResNet width 64), text
# width 512 and 12 text layers, and HA fuses at d_model 512, so only the ResNet depth, the
# CLIP embed dim, the decoder depth and the input size shrink.
ETRIS_CLIP = dict(CRIS_CLIP, vision_width=64, transformer_width=512, transformer_heads=8)
ETRIS_CLIP["transformer_layers"] = 12
ETRIS_OPTS = [
    *("TRAIN.fpn_in", "[512, 1024, 64]", "TRAIN.word_dim", "64", "TRAIN.num_layers", "1"),
    *("TRAIN.dim_ffn", "64", "TRAIN.input_size", str(INPUT_SIZE)),
]


def _home(env: str, folder: str) -> Path:
    home = Path(os.environ.get(env) or SHARED_UPSTREAM / folder)
    if not (home / "model" / "segmenter.py").is_file():
        pytest.skip(f"{folder} code not found at {home} (set {env} to a checkout)")
    return home


@pytest.fixture(scope="module")
def cris_home() -> Path:
    return _home("AVSBRIDGE_CRIS_HOME", "CRIS.pytorch")


@pytest.fixture(scope="module")
def etris_home() -> Path:
    return _home("AVSBRIDGE_ETRIS_HOME", "ETRIS")


def tiny_official(home: Path, config: str, clip_dims: dict, opts: list[str], out: Path):
    """(TorchScript CLIP file, train.py-format checkpoint) built by the checkout's own code."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    clip_file = out / "RN-tiny.pt"  # ETRIS picks its ResNet bridger by "RN" in this path
    ckpt = out / "best_model.pth"
    with official_code(home, "model/segmenter.py", home.name, "home"):
        torch.manual_seed(0)
        clip = importlib.import_module("model.clip").CLIP(**clip_dims).eval()
        text = importlib.import_module("utils.dataset").tokenize("a dog", 17, True)
        traced = torch.jit.trace_module(clip, {"encode_text": text}, check_trace=False)
        torch.jit.save(traced, str(clip_file))
        cfg_module = importlib.import_module("utils.config")
        cfg = cfg_module.merge_cfg_from_list(
            cfg_module.load_cfg_from_cfg_file(str(home / config)), opts
        )
        cfg.clip_pretrain = str(clip_file)
        model, _ = importlib.import_module("model").build_segmenter(cfg)
        # random BatchNorm statistics, so the map is not flat
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        state = {f"module.{k}": v for k, v in model.state_dict().items()}
        torch.save({"epoch": 1, "cur_iou": 0.0, "best_iou": 0.0, "state_dict": state}, ckpt)
    return clip_file, ckpt


def demo_image() -> np.ndarray:
    return read_image(DEMO_IMAGE, mode="RGB")[:, :160]  # not square: the letterbox matters


@pytest.fixture(scope="module")
def tiny_cris(cris_home, tmp_path_factory):
    out = tmp_path_factory.mktemp("cris")
    return tiny_official(cris_home, "config/refcoco/cris_r50.yaml", CRIS_CLIP, CRIS_OPTS, out)


@pytest.fixture(scope="module")
def tiny_etris(etris_home, tmp_path_factory):
    out = tmp_path_factory.mktemp("etris")
    return tiny_official(etris_home, "config/refcoco/bridge_r50.yaml", ETRIS_CLIP, ETRIS_OPTS, out)


def _check_prediction(model, image: np.ndarray) -> None:
    out = model.predict(image, "A photo of a piano")
    prob = out["prob"]
    assert out["prompt"] == "A photo of a piano"
    assert prob.shape == image.shape[:2] and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert prob.std() > 0  # a real map, not a constant
    other = model.predict(image, "A photo of a violin on the left")["prob"]
    assert not np.allclose(prob, other)  # the query reaches the model
    tokens = model.tokens("A photo of a piano")
    assert tuple(tokens.shape) == (1, 17) and int(tokens[0, 0]) == 49406  # start of text


@pytest.mark.slow
def test_cris_through_its_own_code_with_random_weights(cris_home, tiny_cris):
    import torch

    clip_file, ckpt = tiny_cris
    before = sys.modules.get("model")
    model = RIS_MODELS.load_all().create(
        "cris",
        checkpoint=str(ckpt),
        clip_pretrain=str(clip_file),
        checkpoint_sha256=sha256_file(ckpt),
        home=str(cris_home),
        opts=CRIS_OPTS,
        device="cpu",
    )
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    assert model.n_loaded == len(saved) == len(model.model.state_dict())
    key = "proj.txt.weight"
    assert torch.equal(model.model.state_dict()[key], saved[f"module.{key}"])
    assert type(model.model).__name__ == "CRIS"
    _check_prediction(model, demo_image())
    ident = model.identity()
    assert ident["config"]["file"] == "config/refcoco/cris_r50.yaml"
    assert ident["input_size"] == INPUT_SIZE and ident["word_length"] == 17
    assert ident["threshold"] == threshold_of("cris") == 0.35
    assert sys.modules.get("model") is before  # the checkout's packages do not leak


@pytest.mark.slow
def test_etris_through_its_own_code_with_random_weights(etris_home, tiny_etris):
    clip_file, ckpt = tiny_etris
    model = RIS_MODELS.load_all().create(
        "etris",
        checkpoint=str(ckpt),
        clip_pretrain=str(clip_file),
        home=str(etris_home),
        opts=ETRIS_OPTS,
        device="cpu",
    )
    assert type(model.model).__name__ == "ETRIS"
    assert type(model.model.bridger).__name__ == "Bridger_RN"
    assert model.n_loaded == len(model.model.state_dict())
    _check_prediction(model, demo_image())
    assert model.identity()["threshold"] == threshold_of("etris") == 0.35


@pytest.mark.slow
def test_cris_and_etris_side_by_side_keep_their_own_packages(
    cris_home, etris_home, tiny_cris, tiny_etris
):
    """Both checkouts have top-level model/utils packages: each model keeps its own code."""
    cris = RIS_MODELS.load_all().create(
        "cris",
        checkpoint=str(tiny_cris[1]),
        clip_pretrain=str(tiny_cris[0]),
        home=str(cris_home),
        opts=CRIS_OPTS,
        device="cpu",
    )
    etris = RIS_MODELS.create(
        "etris",
        checkpoint=str(tiny_etris[1]),
        clip_pretrain=str(tiny_etris[0]),
        home=str(etris_home),
        opts=ETRIS_OPTS,
        device="cpu",
    )
    # (their modules left sys.modules; the classes' code still names its file)
    assert Path(type(cris.model).forward.__code__.co_filename).is_relative_to(cris_home)
    assert Path(type(etris.model).forward.__code__.co_filename).is_relative_to(etris_home)
    image = demo_image()
    assert cris.predict(image, "a piano")["prob"].shape == image.shape[:2]
    assert etris.predict(image, "a piano")["prob"].shape == image.shape[:2]


@pytest.mark.slow
def test_a_wrong_sha256_is_refused_before_loading(cris_home, tiny_cris, tmp_path):
    clip_file, ckpt = tiny_cris
    not_a_checkpoint = tmp_path / "best_model.pth"
    not_a_checkpoint.write_bytes(b"not a torch file")
    for checkpoint, pins in (
        (ckpt, {"checkpoint_sha256": "0" * 64}),
        (not_a_checkpoint, {"checkpoint_sha256": "1" * 64}),  # refused before torch.load
        (ckpt, {"clip_sha256": "2" * 64}),
    ):
        with pytest.raises(ArtifactError, match="sha256 differs"):
            RIS_MODELS.load_all().create(
                "cris",
                checkpoint=str(checkpoint),
                clip_pretrain=str(clip_file),
                home=str(cris_home),
                opts=CRIS_OPTS,
                device="cpu",
                **pins,
            )
    with pytest.raises(ArtifactError, match="tensors-only checkpoint"):
        RIS_MODELS.create(
            "cris",
            checkpoint=str(not_a_checkpoint),
            clip_pretrain=str(clip_file),
            home=str(cris_home),
            opts=CRIS_OPTS,
            device="cpu",
        )


@pytest.mark.slow
def test_a_checkpoint_of_another_config_is_refused(cris_home, tiny_cris):
    clip_file, ckpt = tiny_cris
    opts = [*CRIS_OPTS, "TRAIN.dim_ffn", "32"]
    with pytest.raises(ArtifactError, match="does not fit the CRIS.pytorch model"):
        RIS_MODELS.load_all().create(
            "cris",
            checkpoint=str(ckpt),
            clip_pretrain=str(clip_file),
            home=str(cris_home),
            opts=opts,
            device="cpu",
        )
    with pytest.raises(ArtifactError, match="opts refused"):
        RIS_MODELS.create(
            "cris",
            checkpoint=str(ckpt),
            clip_pretrain=str(clip_file),
            home=str(cris_home),
            opts=["TRAIN.no_such_key", "1"],
            device="cpu",
        )


@pytest.mark.slow
def test_etris_refuses_a_clip_path_that_picks_the_other_bridger(etris_home, tiny_etris, tmp_path):
    clip_file, ckpt = tiny_etris
    renamed = tmp_path / "clip-tiny.pt"
    renamed.symlink_to(clip_file)
    with pytest.raises(ArtifactError, match="bridger.*ResNet config"):
        RIS_MODELS.load_all().create(
            "etris",
            checkpoint=str(ckpt),
            clip_pretrain=str(renamed),
            home=str(etris_home),
            opts=ETRIS_OPTS,
            device="cpu",
        )


def test_a_home_with_the_other_model_is_refused(etris_home, tiny_etris):
    clip_file, ckpt = tiny_etris
    with pytest.raises(ArtifactError, match="not a CRIS.pytorch checkout.*has no CRIS"):
        RIS_MODELS.load_all().create(
            "cris",
            checkpoint=str(ckpt),
            clip_pretrain=str(clip_file),
            config="config/refcoco/bridge_r50.yaml",
            home=str(etris_home),
            device="cpu",
        )
    with pytest.raises(ArtifactError, match="config YAML is missing"):
        RIS_MODELS.create(
            "cris", checkpoint=str(ckpt), clip_pretrain=str(clip_file), home=str(etris_home)
        )


@pytest.mark.parametrize(
    ("backend", "env"), [("cris", "AVSBRIDGE_CRIS_HOME"), ("etris", "AVSBRIDGE_ETRIS_HOME")]
)
def test_a_missing_home_names_the_option(backend, env, tmp_path, monkeypatch):
    """Runs without the checkouts: the error names the option (and the env var)."""
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    monkeypatch.delenv(env, raising=False)
    nowhere = tmp_path / "nowhere"
    with pytest.raises(ArtifactError, match=rf"option home \(or env {env}\)") as err:
        RIS_MODELS.load_all().create(
            backend, checkpoint=str(weights), clip_pretrain=str(weights), home=str(nowhere)
        )
    assert str(nowhere) in str(err.value)
    monkeypatch.setenv(env, str(nowhere))
    with pytest.raises(ArtifactError, match="not a .* checkout"):
        RIS_MODELS.create(backend, checkpoint=str(weights), clip_pretrain=str(weights))


def test_cris_and_etris_are_registered_with_their_envs():
    RIS_MODELS.load_all()
    for name in ("cris", "etris"):
        needs = RIS_MODELS.needs(name)
        assert needs.gpu and needs.env == name and (REPO / "envs" / f"{name}.yaml").is_file()
        assert {"home", "config", "checkpoint", "checkpoint_sha256", "clip_pretrain"} <= set(
            needs.options or ()
        )


def test_the_commented_paper_profile_entries_are_valid():
    """config/paper.yaml's commented etris / cris entries pass the schema and option checks."""
    import yaml

    from avsbridge.config import load_config
    from avsbridge.stages import check_backends

    text = (REPO / "config" / "paper.yaml").read_text()
    block = text.split("Replace null with:\n", 1)[1].split("    etris: null", 1)[0]
    prefix = "    #   "
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines and all(line.startswith(prefix) for line in lines)
    entries = yaml.safe_load("\n".join(line[len(prefix) :] for line in lines))
    assert set(entries) == {"etris", "cris"}
    config = load_config(REPO / "config" / "paper.yaml", overrides={"backends": {"ris": entries}})
    assert [p for p in check_backends(config) if "backends.ris" in p] == []
    assert config["backends"]["ris"]["cris"]["options"]["config"] == "config/refcoco/cris_r50.yaml"
    assert "RN" in config["backends"]["ris"]["etris"]["options"]["clip_pretrain"]


def _official_inference_iou(home: Path, model, image: np.ndarray, query: str, mask_png: Path):
    """IoU that the checkout's own ``engine.inference`` reports for one image and sentence
    against ``mask_png`` (its test loader's batch rebuilt by hand: the LMDB reader is the
    only part skipped; ``.cuda()`` is a no-op, wandb -- imported, unused there -- a stub)."""
    import types

    import cv2
    import torch

    with official_code(home, "model/segmenter.py", home.name, "home"):
        sys.modules["wandb"] = types.ModuleType("wandb")
        cuda = torch.Tensor.cuda
        torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        try:
            engine = importlib.import_module("engine.engine")
            data = importlib.import_module("utils.dataset").RefDataset(
                None, None, "refcoco", "val", "test", model.cfg.input_size, model.cfg.word_len
            )
            mat, mat_inv = data.getTransformMat(image.shape[:2], True)
            warped = cv2.warpAffine(
                image,
                mat,
                data.input_size,
                flags=cv2.INTER_CUBIC,
                borderValue=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
            )
            params = {
                "mask_dir": [str(mask_png)],
                "inverse": torch.from_numpy(mat_inv)[None],
                "ori_size": torch.tensor([image.shape[:2]]),
                "sents": [(query,)],  # DataLoader's collation of a list of sentences
            }
            loader = [(data.convert(warped)[0][None], params)]
            iou, _ = engine.inference(loader, model.model, model.cfg)
        finally:
            torch.Tensor.cuda = cuda  # type: ignore[method-assign]
            del sys.modules["wandb"]
    return iou


@pytest.mark.slow
def test_the_mask_at_the_threshold_equals_the_official_inference(
    cris_home, etris_home, tiny_cris, tiny_etris, tmp_path
):
    """The adapter's map > 0.35 is the mask CRIS's / ETRIS's own engine.inference scores: the
    engine's IoU against it is 1, and below 1 against the mask with one pixel flipped."""
    import cv2

    image = demo_image()
    query = "A photo of a piano"
    for name, home, (clip_file, ckpt), opts in (
        ("cris", cris_home, tiny_cris, CRIS_OPTS),
        ("etris", etris_home, tiny_etris, ETRIS_OPTS),
    ):
        model = RIS_MODELS.load_all().create(
            name,
            checkpoint=str(ckpt),
            clip_pretrain=str(clip_file),
            home=str(home),
            opts=opts,
            device="cpu",
        )
        mask = model.predict(image, query)["prob"] > threshold_of(name)
        assert 0 < mask.sum() < mask.size, f"{name}: a degenerate mask tests nothing"
        same, flipped = tmp_path / f"{name}.png", tmp_path / f"{name}-flipped.png"
        cv2.imwrite(str(same), mask.astype(np.uint8) * 255)
        off = mask.copy()
        off[0, 0] = not off[0, 0]
        cv2.imwrite(str(flipped), off.astype(np.uint8) * 255)
        assert _official_inference_iou(home, model, image, query, same) == pytest.approx(1.0)
        assert _official_inference_iou(home, model, image, query, flipped) < 1.0 - 1e-5
