"""SSP answers (questions a-d), TeSO scene descriptions and text cues, REC#1, their backends.

Fake backends count their calls so "parsed and cached" is measured, the openai-vision
backend runs against the 127.0.0.1 fake Chat Completions server of
test_translate_openai (faults scripted there), LLaVA is a tiny random config saved and
loaded through the real loader, and spaCy's model is the pinned wheel's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_translate_openai import FakeChatServer

from avsbridge.data.records import Clip
from avsbridge.io import read_json, write_png
from avsbridge.metrics.rec import FrameCues, matches, rec_scores
from avsbridge.mllm import MLLM_ANSWERERS, SCENE_DESCRIBERS
from avsbridge.mllm.base import Completion, Turn, check_turns, pick_frames
from avsbridge.mllm.prompts import QUESTION_IDS, q1, q2, scene_prompt
from avsbridge.mllm.run import answer_shard, describe_shard, parse_nouns
from avsbridge.translate import TRANSLATORS, CacheMiss, TranslatorError
from avsbridge.translate.cache import FREE

REPO = Path(__file__).resolve().parents[1]
PAPERS = REPO.parent / "shared" / "papers"


class FakeVision:
    """Answers Q1 with a sentence naming the image mean, Q2 with nouns; counts calls."""

    name = "fake-vision"
    max_images = 2
    calls: list[tuple[int, int]] = []
    q2_reply = "piano, microphone, man."

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": "fake"}

    def pricing(self, completion: Completion) -> str:
        return FREE

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion:
        check_turns(turns)
        FakeVision.calls.append((len(images), len(turns)))
        if len(turns) == 1:
            return Completion(f"A man plays a piano ({int(images[0].mean())}).", 5, 3, 0.0)
        return Completion(FakeVision.q2_reply, 7, 2, 0.0)


MLLM_ANSWERERS.register("fake-vision")(FakeVision)
SCENE_DESCRIBERS.register("fake-vision")(FakeVision)


def make_clips(root: Path, n_clips: int = 2, n_frames: int = 3) -> list[Clip]:
    clips = []
    for c in range(n_clips):
        frames = []
        for k in range(n_frames):
            path = root / f"clip{c}" / f"{k + 1}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_png(path, np.full((8, 8, 3), 10 * c + k, dtype=np.uint8))
            frames.append(path)
        clips.append(
            Clip(
                id=f"clip{c}",
                subset="test",
                split="test",
                category="playing_piano",
                frames=tuple(frames),
                audio=None,
                masks=(None,) * n_frames,
            )
        )
    return clips


# --- questions and prompts as published ----------------------------------------------


def test_questions_a_to_d_are_the_papers_text() -> None:
    assert QUESTION_IDS == ("a", "b", "c", "d")
    assert q1("a") == "Describe the video."
    assert q1("d").endswith('for example: "a man plays a guitar".')
    assert "Answer1" in q2()
    text = (PAPERS / "ssp.txt").read_text(encoding="utf-8")
    for question in QUESTION_IDS:
        assert f"question1: {q1(question)}" in text
    assert f"question2: {q2().replace('Answer1', '**Answer1**')}" in text
    assert f"“{scene_prompt()}”" in (PAPERS / "teso.txt").read_text(encoding="utf-8")
    with pytest.raises(KeyError, match="known: a, b, c, d"):
        q1("e")


def test_pick_frames_middle_for_one_image_spread_for_more() -> None:
    assert pick_frames(5, 1) == [2]
    assert pick_frames(5, 3) == [0, 2, 4]
    assert pick_frames(2, 10) == [0, 1]


def test_parse_nouns() -> None:
    assert parse_nouns("piano, microphone, man.") == ["piano", "microphone", "man"]
    assert parse_nouns("none") == []


# --- answers: parsed, cached, replayed -------------------------------------------------


def test_answers_a_to_d_parse_and_a_warm_run_calls_nothing(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "frames")
    cache = tmp_path / "cache"
    FakeVision.calls = []
    summary = answer_shard(clips, "fake-vision", {}, {}, cache, tmp_path / "out1")
    assert len(FakeVision.calls) == 2 * 4 * 2  # clips x questions x (Q1, Q2)
    assert all(n_images == 2 for n_images, _ in FakeVision.calls)  # max_images frames shown
    assert summary["llm_requests"] == 16 and summary["failed_calls"] == 0
    record = read_json(tmp_path / "out1" / "clip0.json")
    assert record["frames"] == [1, 3] and len(record["images"]) == 2
    for question in QUESTION_IDS:
        entry = record["questions"][question]
        assert entry["q1"] == q1(question) and entry["q2"] == q2()
        assert entry["a1"].startswith("A man plays a piano")
        assert entry["a2_nouns"] == ["piano", "microphone", "man"]
        assert entry["a1_key"] in record["cache_keys"] and not entry["problems"]
    # the Q2 request is the conversation Q1, A1, Q2
    entry = read_json(cache / record["questions"]["d"]["a2_key"][:2] / f"{entry['a2_key']}.json")
    turns = json.loads(entry["request"]["user"])
    assert [t[0] for t in turns] == ["user", "assistant", "user"] and turns[1][1] == entry_a1(
        record
    )
    assert len(entry["request"]["attachments"]) == 2
    FakeVision.calls = []
    answer_shard(clips, "fake-vision", {}, {}, cache, tmp_path / "out2", offline=True)
    assert FakeVision.calls == []
    for name in ("clip0.json", "clip1.json", "_summary.json"):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
    with pytest.raises(CacheMiss):
        answer_shard(
            clips, "fake-vision", {}, {}, tmp_path / "empty", tmp_path / "o3", offline=True
        )


def entry_a1(record: dict[str, Any]) -> str:
    return record["questions"]["d"]["a1"]


def test_an_a2_without_nouns_is_malformed_and_counted(tmp_path: Path) -> None:
    FakeVision.q2_reply = "..."
    try:
        answer_shard(
            make_clips(tmp_path / "f", 1), "fake-vision", {}, {"questions": ["d"]},
            tmp_path / "c", tmp_path / "o",
        )  # fmt: skip
    finally:
        FakeVision.q2_reply = "piano, microphone, man."
    record = read_json(tmp_path / "o" / "clip0.json")
    assert record["malformed_answers"] == 1
    assert record["questions"]["d"]["a2_nouns"] is None
    assert "malformed answer: A2 names no noun" in record["questions"]["d"]["problems"][0]


def test_unknown_question_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known: a, b, c, d"):
        answer_shard([], "fake-vision", {}, {"questions": ["x"]}, tmp_path, tmp_path / "o")


# --- openai-vision against the fake server: images sent, faults counted ----------------


@pytest.fixture()
def server():
    fake = FakeChatServer()
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def vision_options(server: FakeChatServer, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "api_key_env": "AVSBRIDGE_TEST_NO_KEY",
        "backoff_base_s": 0.001,
        "max_attempts": 3,
        "timeout_s": 5.0,
        "max_images": 1,
        **extra,
    }


def test_openai_vision_sends_data_urls_and_records_faults(
    server: FakeChatServer, tmp_path: Path
) -> None:
    server.reply = lambda user: "A man plays a guitar." if isinstance(user, list) else "guitar"
    server.script = [("status", 429, {}), ("status", 503, {})]  # retried, then answered
    # Q2 keeps failing with 500: recorded (fallback), counted, A2 None with the reason
    server.rule = lambda user: ("status", 500, {}) if isinstance(user, str) else None
    clips = make_clips(tmp_path / "f", 1)
    options = vision_options(server, failure_policy="fallback")
    summary = answer_shard(clips, "openai-vision", options, {"questions": ["a", "d"]},
                           tmp_path / "c", tmp_path / "o")  # fmt: skip
    assert summary["failed_calls"] == 2 and summary["llm_requests"] == 4
    record = read_json(tmp_path / "o" / "clip0.json")
    assert record["questions"]["a"]["a1"] == "A man plays a guitar."
    assert record["questions"]["a"]["a2"] is None
    assert "call failed after retries: HTTP 500" in record["questions"]["a"]["problems"][0]
    assert len(record["failed_keys"]) == 2
    first = server.requests[0]["body"]["messages"][0]["content"]
    assert first[0]["type"] == "image_url"
    assert first[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert first[-1] == {"type": "text", "text": q1("a")}
    # failure_policy=fail: the job fails, but the answered Q1s are cached for the re-run
    with pytest.raises(TranslatorError, match="failure_policy=fail"):
        answer_shard(clips, "openai-vision", vision_options(server), {"questions": ["a"]},
                     tmp_path / "c", tmp_path / "o2")  # fmt: skip
    assert not (tmp_path / "o2").exists()


def test_openai_vision_empty_answer_is_retried_then_recorded(
    server: FakeChatServer, tmp_path: Path
) -> None:
    server.rule = lambda user: ("text", "   ")
    options = vision_options(server, failure_policy="fallback", max_attempts=2)
    with pytest.raises(TranslatorError, match="all 1 model requests failed"):
        answer_shard(make_clips(tmp_path / "f", 1), "openai-vision", options,
                     {"questions": ["a"]}, tmp_path / "c", tmp_path / "o")  # fmt: skip
    assert server.calls == 2  # max_attempts


# --- scene descriptions and cues -----------------------------------------------------


class FakeCueLLM:
    passthrough = False
    calls = 0
    replies: list[str] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": "fake-cues", "model": "fake"}

    def complete(self, system: str, user: str) -> Completion:
        FakeCueLLM.calls += 1
        assert "Description:" in user and "step by step" in system
        reply = FakeCueLLM.replies.pop(0) if FakeCueLLM.replies else "<answer>piano, man</answer>"
        return Completion(reply, 10, 3, 0.0)


TRANSLATORS.register("fake-cues")(FakeCueLLM)


def test_descriptions_then_cues_of_every_template(tmp_path: Path) -> None:
    from avsbridge.cues.run import cue_shard

    clips = make_clips(tmp_path / "f", 1, 2)
    describe_shard(clips, "fake-vision", {}, tmp_path / "c", tmp_path / "scenes")
    scene = read_json(tmp_path / "scenes" / "clip0.json")
    assert [f["frame"] for f in scene["frames"]] == [1, 2]
    assert scene["frames"][0]["description"].startswith("A man plays a piano")
    FakeCueLLM.calls = 0
    FakeCueLLM.replies = ["Reasoning ... no tags", "<answer>none</answer>"]
    summary = cue_shard(clips, tmp_path / "scenes", "fake-cues", {"failure_policy": "fallback"},
                        {}, tmp_path / "c", tmp_path / "cues")  # fmt: skip
    record = read_json(tmp_path / "cues" / "clip0.json")
    cot, oneshot, noun = (record["templates"][t] for t in ("cot", "oneshot", "noun"))
    assert cot[0]["cues"] is None and "no <answer>" in cot[0]["problem"]  # malformed, said
    assert cot[1]["cues"] == []  # an explicit "none"
    assert oneshot[0]["cues"] == ["piano", "man"]
    assert noun[0]["cues"] == ["man", "piano"]  # spaCy nouns of "A man plays a piano (0)."
    assert record["malformed_answers"] == 1 and summary["malformed_answers"] == 1
    assert FakeCueLLM.calls == 4 and summary["frames_without_cues"]["cot"] == 1
    # the one-shot prompt shows one example, the few-shot three
    from avsbridge.cues.templates import cue_prompt

    assert cue_prompt("oneshot", "x")[1].count("Example ") == 1
    assert cue_prompt("cot", "x")[1].count("Example ") == 3


def test_spacy_noun_parser() -> None:
    from avsbridge.cues.nouns import nouns, parser_identity

    assert nouns("Two dogs are barking at a red car near the trees.") == ["dog", "car", "tree"]
    assert parser_identity()["version"].startswith("3.8")


# --- REC#1 ----------------------------------------------------------------------------


def test_rec1_hand_computed() -> None:
    gt = ["guitar", "man"]  # playing_acoustic_guitar, male_speech
    frames = [
        FrameCues("a", 1, ["guitar", "table"], gt),  # 1/2
        FrameCues("a", 2, ["person"], gt),  # alias of man: 1/1
        FrameCues("a", 3, [], gt),  # no cue: 0
        FrameCues("a", 4, None, gt),  # failed: 0, counted
        FrameCues("b", 1, ["dogs"], ["dog"]),  # plural: 1/1
    ]
    scores = rec_scores(frames)
    assert scores["ap"] == pytest.approx((0.5 + 1 + 0 + 0 + 1) / 5)
    assert scores["ap_clip"] == pytest.approx((2 / 3 + 1) / 2)  # a: {guitar, table, person}
    assert scores["recall"] == pytest.approx((0.5 + 0.5 + 0 + 0 + 1) / 5)
    assert scores["micro_precision"] == pytest.approx(3 / 4)
    assert (scores["n_failed"], scores["n_empty"], scores["n_clips"]) == (1, 1, 2)
    assert matches("acoustic guitar", ["guitar"]) and not matches("table", ["guitar"])


# --- LLaVA: tiny random config through the real loader ----------------------------------

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "\n{% endfor %}{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


def write_tiny_llava(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = ["<unk>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "a", "man", "piano"]
    words += [f"w{i}" for i in range(48 - len(words))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(["<image>", "<s>", "</s>"])  # "<image><image>" splits
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        num_additional_image_tokens=1,  # CLIP's CLS, dropped again by the "default" strategy
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            image_size=28, patch_size=14, projection_dim=16,
        ),
        text_config=LlamaConfig(
            vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
            bos_token_id=1, eos_token_id=2,
        ),
        image_token_index=words.index("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )  # fmt: skip
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_llava_tiny_config_through_the_real_loader(tmp_path: Path) -> None:
    from avsbridge.mllm.llava import LlavaVision

    folder = write_tiny_llava(tmp_path / "llava")
    backend = LlavaVision(model_path=str(folder), max_new_tokens=3, device="cpu")
    identity = backend.identity()
    assert identity["weights_sha256"] and identity["model"] == "llava"
    reply = backend.answer([np.zeros((40, 30, 3), np.uint8)], [("user", scene_prompt())])
    assert isinstance(reply.text, str) and 1 <= reply.completion_tokens <= 3
    assert reply.prompt_tokens > 4  # the four image tokens were expanded into the prompt
    # as the scene describer, through the cache
    clips = make_clips(tmp_path / "f", 1, 1)
    options = {"model_path": str(folder), "max_new_tokens": 2, "device": "cpu"}
    summary = describe_shard(clips, "llava", options, tmp_path / "c", tmp_path / "scenes")
    assert summary["llm_requests"] == 1 and summary["identity"]["backend"] == "llava"


def test_llava_hub_load_needs_a_pinned_revision() -> None:
    from avsbridge.mllm.llava import LlavaVision

    with pytest.raises(ValueError, match="pinned revision"):
        LlavaVision()


# --- MiniCPM-o-2.6: registration here; pin, snapshot and calls in tests/test_minicpm.py ---


def test_minicpm_declares_gpu_env_and_refuses_an_unpinned_revision(tmp_path: Path) -> None:
    from avsbridge.io import ArtifactError
    from avsbridge.mllm.minicpm import MiniCPMO26

    needs = MLLM_ANSWERERS.needs("minicpm-o-2.6")
    assert needs.gpu and needs.env == "minicpm" and (needs.mem_mb or 0) >= 16000
    assert (REPO / "envs" / "minicpm.yaml").is_file()
    with pytest.raises(ValueError, match="40-hex commit"):
        MiniCPMO26(revision="main")
    with pytest.raises(ArtifactError, match="not a MiniCPM-o-2_6 model folder"):
        MiniCPMO26(model_path=str(tmp_path))


# --- audit: an answer back to its frames -------------------------------------------------


def test_audit_walks_an_answer_back_to_its_frames(tmp_path: Path, monkeypatch) -> None:
    from avsbridge.config import load_config
    from avsbridge.mllm.job import mllm_answers_stage
    from avsbridge.provenance.audit import audit_artifacts
    from avsbridge.stages import JobContext

    config = load_config()
    config["backends"]["mllm_answers"] = {"name": "fake-vision"}
    config["datasets"] = {"ms3": {**config["datasets"]["ms3"], "shard_size": 1, "limit": 1}}
    monkeypatch.chdir(REPO)
    out = tmp_path / "answers" / "ms3" / "fake-vision" / "s0000"
    ctx = JobContext(
        config=config,
        wildcards={"dataset": "ms3", "mllm_answers": "fake-vision", "shard": "s0000"},
        input={},
        output=out,
        params={"cache_dir": str(tmp_path / "cache"), "mllm_answers": {"questions": ["d"]}},
        log=None,
    )
    mllm_answers_stage(ctx)
    result = audit_artifacts([out], REPO)
    assert result.problems == []
    node = result.nodes[str(out)]
    assert node.family == "answers" and node.rule == "mllm_answers"
    frames = sorted(n.path for n in result.nodes.values() if n.family == "frame")
    (record,) = [read_json(f) for f in out.glob("demo_*.json")]
    assert frames == sorted(image["path"] for image in record["images"])
    assert len(frames) == 2  # FakeVision.max_images: frames 1 and 5 of the clip
    assert set(node.info["clips"][record["clip"].replace("/", "__")]["answers"]) == set(
        record["cache_keys"]
    )
    # an LLM cache entry the answer used is gone: audit names it
    key = record["cache_keys"][0]
    (tmp_path / "cache" / key[:2] / f"{key}.json").unlink()
    problems = audit_artifacts([out], REPO).problems
    assert [p.kind for p in problems] == ["missing"] and key in problems[0].detail


# --- wiring: the family targets plan the new stages on the families: datasets ----------


def test_family_targets_plan_answers_scenes_cues_and_rec1(tmp_path: Path) -> None:
    import shutil

    from workflow_helpers import planned_jobs, run_snakemake, slice_config

    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    configfile = slice_config(tmp_path)
    shutil.copy(configfile, work / "config" / "config.yaml")  # as build_slice does
    targets = ("answers_outputs", "scenes_outputs", "cues_outputs", "recognition_outputs")
    planned = planned_jobs(run_snakemake(work, configfile, "-n", *targets))
    for rule in ("mllm_answers", "scene_description", "text_cues", "cue_recognition"):
        assert planned.get(rule, 0) >= 1, planned
    # REC#1 once per dataset of families.cue_recognition the slice has, over all its shards
    assert planned["cue_recognition"] <= 2 and planned["text_cues"] == planned["scene_description"]
