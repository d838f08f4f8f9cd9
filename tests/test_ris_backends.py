"""RIS backends: the demo stand-in's graded map, CLIPSeg and Grounded-SAM through the real
transformers loaders with tiny random configs, and the thresholds as data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsbridge.io import ArtifactError
from avsbridge.ris import RIS_MODELS, threshold_of, thresholds
from avsbridge.ris.segmenter import graded_map, prompt_of

REPO = Path(__file__).resolve().parents[1]


def test_thresholds_are_data_with_sources():
    assert threshold_of("asda") == 0.35
    RIS_MODELS.load_all()
    for name in RIS_MODELS.names():
        assert 0 <= threshold_of(name) <= 1 and thresholds()[name]["source"]
    with pytest.raises(KeyError, match="no threshold"):
        threshold_of("nope")


def test_graded_map_keeps_the_mask_above_one_half():
    mask = np.zeros((40, 50), np.float32)
    mask[10:30, 5:25] = 1
    prob = graded_map(mask, 0.6)
    assert prob.min() >= 0 and prob.max() <= 1
    assert np.array_equal(prob > 0.5, mask > 0.5)
    # graded: the top-k selection of the protocol has an order to work with
    assert len(np.unique(prob[mask > 0.5])) > 5
    empty = graded_map(np.zeros((40, 50)), 0.0)
    assert empty.max() < 0.5 and len(np.unique(empty)) > 5


def test_prompt_drops_baav_wording():
    assert prompt_of("A photo of a dog") == "a dog"
    assert prompt_of("piano music plays") == "piano music plays"


def test_demo_matcher_ris_finds_the_named_object():
    from avsbridge.data.demo_zeroshot import load_demo_zeroshot
    from avsbridge.io import read_image
    from avsbridge.metrics.baav import prepare_gt, resize_prediction, sample_iou

    demo = REPO / "data/demo"
    sample = load_demo_zeroshot(demo / "zeroshot/demo_zeroshot.json", demo)[0]
    model = RIS_MODELS.load_all().create("demo-matcher", vocabulary=str(demo / "vocabulary"))
    out = model.predict(read_image(sample.image), f"A photo of a {sample.source}")
    assert out["prompt"] == f"a {sample.source}"
    gt = prepare_gt(read_image(sample.gt, mode="L"))
    iou = sample_iou(resize_prediction(out["prob"]) > 0.5, gt)
    assert iou > 0.5, out["detections"]
    assert model.identity()["segmenter"]["backend"] == "demo-matcher"


def _tiny_clip_tokenizer(folder: Path):
    import json

    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


@pytest.fixture(scope="module")
def tiny_clipseg(tmp_path_factory):
    """A random CLIPSeg saved with save_pretrained (model + processor), loaded by the backend."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPSegTextConfig,
        CLIPSegVisionConfig,
        ViTImageProcessor,
    )

    folder = tmp_path_factory.mktemp("clipseg")
    torch.manual_seed(0)
    tok = _tiny_clip_tokenizer(folder)
    text = CLIPSegTextConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = CLIPSegVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=64,
        patch_size=16,
    )
    config = CLIPSegConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=16,
        reduce_dim=16,
        extract_layers=[0, 1],
        decoder_num_attention_heads=2,
        decoder_intermediate_size=20,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(folder)
    image_processor = ViTImageProcessor(
        size={"height": 64, "width": 64},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def test_clipseg_through_the_real_loader(tiny_clipseg):
    model = RIS_MODELS.load_all().create("clipseg", model=str(tiny_clipseg), device="cpu", size=64)
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    out = model.predict(image, "a dog")
    prob = out["prob"]
    assert prob.shape == (50, 70) and prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1 and prob.std() > 0
    # a different query changes the map: the text really reaches the model
    assert not np.allclose(prob, model.predict(image, "zebra")["prob"])
    ident = model.identity()
    assert ident["model"]["path"] == tiny_clipseg.name and len(ident["model"]["sha256"]) == 64
    assert RIS_MODELS.needs("clipseg").gpu


def test_grounded_sam_ris_through_hf_loaders(tmp_path):
    from tiny_models import write_hf_gdino, write_hf_sam

    gdino = write_hf_gdino(tmp_path / "gdino")
    sam = write_hf_sam(tmp_path / "sam")
    model = RIS_MODELS.load_all().create(
        "grounded-sam",
        box_threshold=0.0,
        text_threshold=0.0,
        segmenter_options={"gdino_model": str(gdino), "sam_model": str(sam), "device": "cpu"},
    )
    image = np.random.default_rng(1).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    out = model.predict(image, "A photo of a dog")
    assert out["prompt"] == "a dog"
    assert out["prob"].shape == (128, 160)
    assert 0 <= out["prob"].min() and out["prob"].max() <= 1
    if out["detections"]:
        assert (out["prob"] > 0.5).any()
    assert model.identity()["segmenter"]["backend"] == "hf-gdino-sam"


@pytest.fixture(scope="module")
def asda_home():
    from conftest import SHARED_UPSTREAM, _need

    return _need(SHARED_UPSTREAM / "ASDA" / "model" / "model.py", "ASDA upstream code").parents[1]


@pytest.mark.slow
def test_asda_through_its_own_model_code_with_random_weights(asda_home, tmp_path):
    """ASDA's Model (ViT-B/16 CLIP inside) built offline from a random CLIP state dict and a
    random ASDA checkpoint in its own format; one forward through the backend."""
    import torch

    from avsbridge.ris.asda import import_clip

    clip = import_clip()
    CLIP = clip.model.CLIP

    torch.manual_seed(0)
    vit_b16 = CLIP(
        embed_dim=512,
        image_resolution=224,
        vision_layers=12,
        vision_width=768,
        vision_patch_size=16,
        context_length=77,
        vocab_size=49408,
        transformer_width=512,
        transformer_heads=8,
        transformer_layers=12,
    )
    clip_file = tmp_path / "ViT-B-16.state.pt"
    torch.save(vit_b16.state_dict(), clip_file)
    del vit_b16
    from avsbridge.ris.asda import _asda_on_path

    with _asda_on_path(asda_home, cpu=True) as module:
        asda = module.Model(clip_model=str(clip_file), tunelang=True, num_query=16, fusion_dim=768)
    ckpt = tmp_path / "asda.pth"
    torch.save({"state_dict": asda.state_dict()}, ckpt)
    probe = next(iter(asda.state_dict()))
    del asda
    model = RIS_MODELS.load_all().create(
        "asda",
        checkpoint=str(ckpt),
        clip_weights=str(clip_file),
        asda_home=str(asda_home),
        device="cpu",
    )
    assert model.n_loaded == model.n_params  # every tensor came from the checkpoint
    assert torch.equal(
        model.model.state_dict()[probe], torch.load(ckpt, weights_only=True)["state_dict"][probe]
    )
    word_id, mask = model.tokens("A photo of a dog")
    assert word_id.shape == (1, 17) and mask.sum() == len(
        clip.tokenize("A photo of a dog")[0].nonzero()
    )
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    prob = model.predict(image, "A photo of a dog")["prob"]
    assert prob.shape == (224, 224) and 0 <= prob.min() and prob.max() <= 1
    assert "asda" in RIS_MODELS and RIS_MODELS.needs("asda").env == "asda"
    with pytest.raises(ArtifactError, match="sha256"):
        RIS_MODELS.create(
            "asda",
            checkpoint=str(ckpt),
            clip_weights=str(clip_file),
            asda_home=str(asda_home),
            checkpoint_sha256="0" * 64,
            device="cpu",
        )
