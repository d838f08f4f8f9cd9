"""The openai backend against OpenAI-compatible servers: answer format, identity,
failure policy and fail-fast (issue 11), on the scripted fake server.

The same four items run against a real llama.cpp server in test_llamacpp_server.py.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_translate_openai import CLIPS_CAPTION, FakeChatServer, make_backend, run_shard, tree_bytes

from avsbridge.io import read_json
from avsbridge.translate import CallCache, TranslatorError, cache_stats
from avsbridge.translate.backends import Completion, EndpointDown
from avsbridge.translate.cache import load_entries, request_key
from avsbridge.translate.openai_backend import (
    DEFAULT_MAX_TOKENS,
    OpenAITranslator,
    model_key,
)

USER = "<frame0>\ndog\n</frame0>"


@pytest.fixture()
def server() -> Iterator[FakeChatServer]:
    fake = FakeChatServer()
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture()
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    marker = f"sk-test-SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", marker)
    return marker


# ------------------------------------------------------------ 1. answer format


def test_max_tokens_has_a_default_and_format_options_reach_the_server(
    server: FakeChatServer, api_key: str
) -> None:
    make_backend(server).complete("S", USER)
    assert server.requests[-1]["body"]["max_tokens"] == DEFAULT_MAX_TOKENS
    grammar = 'root ::= "<answer>" [a-z ]+ "</answer>"'
    backend = make_backend(
        server,
        max_tokens=32,
        stop=["</answer>\n\n"],
        response_format={"type": "text"},
        extra_body={"grammar": grammar, "top_k": 1},
    )
    backend.complete("S", USER)
    body = server.requests[-1]["body"]
    assert body["max_tokens"] == 32 and body["stop"] == ["</answer>\n\n"]
    assert body["response_format"] == {"type": "text"}
    # extra_body fields travel at the top level of the request, as servers expect
    assert body["grammar"] == grammar and body["top_k"] == 1


def test_format_options_are_part_of_the_identity(server: FakeChatServer, api_key: str) -> None:
    plain = make_backend(server).identity()
    variants = [
        make_backend(server, max_tokens=64).identity(),
        make_backend(server, stop="</answer>").identity(),
        make_backend(server, response_format={"type": "json_object"}).identity(),
        make_backend(server, extra_body={"grammar": "root ::= x"}).identity(),
    ]
    keys = {request_key(i, "S", USER) for i in [plain, *variants]}
    assert len(keys) == 5, "an option that shapes the answer must change the cache key"
    assert make_backend(server, stop="x").identity()["stop"] == ["x"]


@pytest.mark.parametrize(
    "options",
    [
        {"max_tokens": 0},
        {"extra_body": ["grammar"]},
        {"max_connection_failures": 0},
        {"price_as": "gpt-17"},
    ],
)
def test_bad_format_options_are_refused(api_key: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        OpenAITranslator(base_url="http://127.0.0.1:9/v1", **options)


# ---------------------------------------------------------------- 2. identity


def test_server_reported_model_is_recorded_and_an_unknown_model_is_not_priced(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    # llama.cpp style: answers any name, lists the one file it really serves
    server.models = ["/srv/models/SmolLM2-135M-Instruct.Q4_1.gguf"]
    out = run_shard(tmp_path, server, "fc")
    entries = load_entries(tmp_path / "cache")
    assert entries and all(
        e["response"]["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf" for e in entries.values()
    )
    assert all(e["cost_usd"] is None for e in entries.values()), "not known to be GPT-4o"
    identity = read_json(out / "_summary.json")["backend"]
    assert identity["provider"] == "compatible" and identity["model"] == "gpt-4o"
    stats = cache_stats(tmp_path / "cache")
    assert stats["calls_without_price"] == stats["calls"] == 2


def test_self_hosted_gpt4o_never_shares_keys_with_openai(api_key: str) -> None:
    local = OpenAITranslator(base_url="http://127.0.0.1:8080/v1").identity()
    official = OpenAITranslator().identity()
    assert official["provider"] == "openai"
    assert request_key(local, "S", USER) != request_key(official, "S", USER)
    via_host = OpenAITranslator(base_url="https://api.openai.com/v1").identity()
    assert request_key(via_host, "S", USER) == request_key(official, "S", USER)


def test_pricing_follows_what_is_known(api_key: str) -> None:
    answer = Completion("x", 1_000_000, 0, 0.1, model="gpt-4o-2024-05-13")
    official = OpenAITranslator(model="gpt-4o")
    assert official.pricing(answer) == "gpt-4o-2024-05-13"  # the snapshot that answered
    assert official.pricing(Completion("x", 1, 0, 0.1)) == "gpt-4o"
    local = "http://127.0.0.1:8080/v1"
    assert OpenAITranslator(base_url=local).pricing(answer) is None
    assert OpenAITranslator(base_url=local, price_as="gpt-4o").pricing(answer) == "gpt-4o"
    assert OpenAITranslator(base_url=local, price_as="free").pricing(answer) == "free"


def test_price_as_free_costs_zero(tmp_path: Path, server: FakeChatServer, api_key: str) -> None:
    run_shard(tmp_path, server, "fc", price_as="free")
    stats = cache_stats(tmp_path / "cache")
    assert stats["cost_usd"] == 0.0 and stats["calls_without_price"] == 0


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("/home/a/models/SmolLM2.Q4_1.gguf", "SmolLM2.Q4_1.gguf"),
        ("./models/SmolLM2.Q4_1.gguf", "SmolLM2.Q4_1.gguf"),
        ("C:\\models\\SmolLM2.Q4_1.gguf", "SmolLM2.Q4_1.gguf"),
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),  # a hub id, not a path
        ("gpt-4o", "gpt-4o"),
    ],
)
def test_model_given_as_a_file_path_is_keyed_by_file_name(name: str, key: str) -> None:
    assert model_key(name) == key


def test_cache_key_does_not_depend_on_where_the_model_file_lives(
    server: FakeChatServer, api_key: str
) -> None:
    a = make_backend(server, model="/home/alice/m/SmolLM2.Q4_1.gguf")
    b = make_backend(server, model="/scratch/bob/SmolLM2.Q4_1.gguf")
    assert request_key(a.identity(), "S", USER) == request_key(b.identity(), "S", USER)
    a.complete("S", USER)
    assert server.requests[-1]["body"]["model"] == "/home/alice/m/SmolLM2.Q4_1.gguf"
    assert "alice" not in json.dumps(a.identity())


# ---------------------------------------------------------- 3. failure policy


def test_failed_calls_fail_the_job_after_the_answers_are_cached(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    clean = run_shard(
        tmp_path, server, "pc", prompts=("caption", "metadata"), out="clean", cache="cache-clean"
    )
    server.requests.clear()
    # an outage for the dog clip's requests only
    server.rule = lambda user: ("status", 503, {}) if "dog" in user else None
    # pc asks once per frame: 3 of the dog clip's 5 frames mention "dog"
    with pytest.raises(TranslatorError, match=r"3 of 10 LLM requests .* failed") as info:
        run_shard(tmp_path, server, "pc", prompts=("caption", "metadata"), max_attempts=2)
    assert "re-run" in str(info.value) and "failure_policy=fail" in str(info.value)
    assert not (tmp_path / "out").exists(), "no output that a later run would trust"
    cached = len(load_entries(tmp_path / "cache"))
    assert cached == 6  # the car's 5 requests ("engine" asked once) + the dog's other 2
    # the service is back: the re-run calls only the failed requests
    server.rule = lambda user: None
    server.requests.clear()
    out = run_shard(tmp_path, server, "pc", prompts=("caption", "metadata"))
    assert server.calls == 3 and all(
        "dog" in r["body"]["messages"][1]["content"] for r in server.requests
    )
    assert tree_bytes(out) == tree_bytes(clean)


def test_fallback_policy_keeps_the_job_going_and_records_the_failure(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    server.rule = lambda user: ("status", 503, {}) if "dog" in user else None
    out = run_shard(tmp_path, server, "fc", max_attempts=2, failure_policy="fallback")
    dog = read_json(out / "s4__dog1.json")
    assert dog["failed_calls"] == 1 and dog["prompts"] == CLIPS_CAPTION["s4__dog1"]


def test_failure_policy_as_backend_option_and_unknown_policy(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    server.rule = lambda user: ("status", 503, {}) if "dog" in user else None
    # options dict keys reach translate_shard's backend_options (config backends.llm.options)
    out = run_shard(tmp_path, server, "fc", max_attempts=1, failure_policy="fallback")
    assert read_json(out / "_summary.json")["failed_calls"] == 1
    with pytest.raises(ValueError, match="failure_policy must be one of"):
        run_shard(tmp_path, server, "fc", failure_policy="ignore", out="o2")


# --------------------------------------------------------------- 4. fail-fast


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_unreachable_server_fails_the_shard_fast_naming_the_endpoint(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    sleeps: list[float] = []
    t0 = time.monotonic()
    with pytest.raises(EndpointDown) as info:
        run_shard(
            tmp_path,
            server,
            "pc",
            prompts=("caption", "metadata"),
            base_url=url,
            sleep=sleeps.append,
            max_attempts=6,
        )
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert url in message and "4 connection attempts in a row" in message
    assert "is the server running" in message and message.count("cannot reach") == 1
    # 4 attempts in all for the shard (not 6 per request for 10 requests)
    assert len(sleeps) == 3 and elapsed < 10
    assert not (tmp_path / "out").exists()


def test_one_dropped_connection_does_not_trip_fail_fast(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    # resets spread over requests, each followed by an answer: never 2 in a row
    server.script = [("reset",), ("ok",), ("reset",), ("ok",), ("reset",), ("ok",)]
    out = run_shard(
        tmp_path,
        server,
        "pc",
        prompts=("caption", "metadata"),
        max_connection_failures=2,
        sleep=lambda s: None,
    )
    assert read_json(out / "_summary.json")["failed_calls"] == 0


def test_fail_fast_keeps_what_was_answered(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    answered = {"n": 0}

    def rule(user: str):
        answered["n"] += 1
        return ("reset",) if answered["n"] > 3 else None  # the server dies after 3 answers

    server.rule = rule
    with pytest.raises(EndpointDown, match="answers received are cached"):
        run_shard(
            tmp_path,
            server,
            "pc",
            prompts=("caption", "metadata"),
            sleep=lambda s: None,
            max_connection_failures=3,
        )
    assert len(load_entries(tmp_path / "cache")) == 3
    assert CallCache(tmp_path / "cache").root.is_dir()
