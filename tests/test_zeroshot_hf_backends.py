"""Paper-profile query backends through the real transformers loaders, tiny random configs:
BLIP captions (BAaV's decoding settings) and CLAP / CLIP phrase matching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from PIL import Image

from avsbridge.data.zeroshot import ZeroShotSample
from avsbridge.io import write_wav

WORDS = ["a", "dog", "cat", "piano", "photo", "of", "on", "the", "grass", "man", "plays"]


def _clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def _bert_tokenizer(folder: Path):
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS]
    # BLIP's own tokenizer has [DEC] as its BOS special token (skipped when decoding)
    return BertTokenizer(
        vocab={w: i for i, w in enumerate(words)}, do_lower_case=True, bos_token="[DEC]"
    )


@pytest.fixture()
def sample(tmp_path) -> ZeroShotSample:
    rng = np.random.default_rng(0)
    image = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(image)
    audio = tmp_path / "a.wav"
    write_wav(audio, (rng.standard_normal(16000) * 0.1).astype(np.float32), 16000)
    return ZeroShotSample("demo-zeroshot", "s", "g", image, audio, image)


def test_blip_captions_with_baav_settings(tmp_path, sample):
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    from avsbridge.zeroshot_image import IMAGE_CAPTIONERS

    torch.manual_seed(0)
    folder = tmp_path / "blip"
    folder.mkdir()
    tok = _bert_tokenizer(folder)
    text = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "encoder_hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 64,
        "bos_token_id": 5,
        "pad_token_id": 0,
        "sep_token_id": 3,
        "eos_token_id": 3,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=16)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
    ).save_pretrained(folder)
    captioner = IMAGE_CAPTIONERS.load_all().create("blip", model=str(folder), device="cpu")
    out = captioner.caption(sample.image)
    assert isinstance(out["caption"], str)
    assert set(out["caption"].split()) <= set(WORDS) | {"[unk]"}
    ident = captioner.identity()
    assert ident["generate"] == {
        "max_length": 17,
        "repetition_penalty": 2.5,
        "early_stopping": True,
    }
    assert ident["model"]["path"] == "blip" and len(ident["model"]["sha256"]) == 64


@pytest.fixture()
def tiny_clip(tmp_path):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    folder = tmp_path / "clip"
    folder.mkdir()
    tok = _clip_tokenizer(folder)
    text = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    ).save_pretrained(folder)
    CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tok,
    ).save_pretrained(folder)
    return folder


def test_clip_side_scores_each_phrase(tiny_clip, sample):
    from avsbridge.zeroshot_query import MATCHERS

    matcher = MATCHERS.load_all().create("clap-clip", clip_model=str(tiny_clip), device="cpu")
    scores = matcher.score_image(["a dog", "a piano", "a dog"], {}, sample)
    assert len(scores) == 3 and all(-1 <= s <= 1 for s in scores)
    assert scores[0] == pytest.approx(scores[2]) and scores[0] != pytest.approx(scores[1])
    assert "clap" not in matcher._loaded  # the audio side never loaded for VCls
    assert matcher.identity()["clip"]["path"] == "clip"


@pytest.fixture()
def tiny_clap(tmp_path):
    import torch
    from transformers import (
        RobertaTokenizer,
    )

    torch.manual_seed(0)
    folder = tmp_path / "clap"
    folder.mkdir()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab["\u0120" + ch] = len(vocab)
    vocab["\u0120"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tiny_models.write_clap(folder, tok)
    return folder


def test_clap_side_scores_phrases_against_the_whole_wav(tiny_clap, sample):
    from avsbridge.zeroshot_query import MATCHERS
    from avsbridge.zeroshot_query.build import build_query

    matcher = MATCHERS.load_all().create("clap-clip", clap_model=str(tiny_clap), device="cpu")
    scores = matcher.score_audio(["a dog", "a cat"], {}, sample)  # 16 kHz wav, CLAP wants 48
    assert len(scores) == 2 and all(-1 <= s <= 1 for s in scores) and scores[0] != scores[1]
    assert matcher.score_audio(["a dog", "a cat"], {}, sample) == scores  # deterministic
    rec = build_query("vcap_acls", {}, {"caption": "a dog and a cat"}, matcher, sample)
    assert rec["chosen"] == ["a dog", "a cat"][int(np.argmax(scores))]
    assert "clip" not in matcher._loaded


def test_ast_clip_classifies_the_whole_file(tmp_path, sample):
    import torch
    import transformers

    from avsbridge.zeroshot_audio import AUDIO_ANALYSERS

    labels = ["Speech", "Dog", "Piano", "Silence"]
    folder = tmp_path / "ast"
    config = transformers.ASTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_mel_bins=128,
        max_length=100,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    transformers.ASTForAudioClassification(config).save_pretrained(folder)
    transformers.ASTFeatureExtractor(max_length=100).save_pretrained(folder)
    analyser = AUDIO_ANALYSERS.load_all().create(
        "ast-clip", model_path=str(folder), device="cpu", threshold=0.0
    )
    out = analyser.analyse(sample.audio)
    assert out["top_class"] in labels[:3] and out["n_windows"] == 1
    assert [t["label"] for t in out["tags"]][:1] and out["caption"]
    assert analyser.analyse(sample.audio) == out


def test_hub_ids_load_at_their_pinned_commits(tmp_path: Path, monkeypatch) -> None:
    """A default hub id with no ``revision`` asks the hub cache for its pinned commit (never
    a moving ``main``); an explicit revision wins; an unknown id keeps what it was given."""
    import avsbridge.backends as backends
    from avsbridge.zeroshot import hf

    asked: list[tuple[str, str | None]] = []

    def snapshot(model_id: str, revision: str | None, **_: object) -> Path:
        asked.append((model_id, revision))
        folder = tmp_path / model_id.replace("/", "--") / str(revision)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        return folder

    monkeypatch.setattr(backends, "hf_snapshot_dir", snapshot)
    for model_id, commit in hf.PINNED_REVISIONS.items():
        assert len(commit) == 40 and int(commit, 16) >= 0
        _, ref = hf.model_folder(model_id, None)
        assert ref["revision"] == commit and asked[-1] == (model_id, commit)
    _, ref = hf.model_folder("laion/clap-htsat-unfused", "0" * 40)
    assert ref["revision"] == "0" * 40
    _, ref = hf.model_folder("someone/other-model", None)
    assert ref["revision"] is None
