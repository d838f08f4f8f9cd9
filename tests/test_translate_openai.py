"""The openai backend and the shard runner against a local Chat Completions server.

The server (127.0.0.1, random port) answers from a script of faults, then from a
per-request rule (a persistent fault for some prompts), then with a well-formed
reply; it counts every request, so "zero calls on a warm cache" is measured at
the wire. Other test files import it (secrets, kill -9 determinism).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from avsbridge.io import atomic_write_json, read_json
from avsbridge.translate import TRANSLATORS, CacheMiss, CallCache, TranslatorError, cache_stats
from avsbridge.translate.backends import CallFailed
from avsbridge.translate.openai_backend import OpenAITranslator
from avsbridge.translate.run import translate_shard

FRAME_RE = re.compile(r"<frame(\d+)>")


def default_reply(user: str) -> str:
    """One well-formed answer per <frameN> block: 'the sound of a thingN'."""
    n_frames = len(FRAME_RE.findall(user))
    return "\n".join(f"<answer>The sound of a Thing{i}</answer>" for i in range(n_frames))


class FakeChatServer:
    """A scripted OpenAI-compatible /v1/chat/completions endpoint."""

    def __init__(self) -> None:
        self.script: list[tuple[Any, ...]] = []
        self.requests: list[dict[str, Any]] = []
        self.reply: Callable[[str], str] = default_reply
        #: user text -> action (as in ``script``) or None, once the script is used up
        self.rule: Callable[[str], tuple[Any, ...] | None] = lambda user: None
        #: ids served at GET /v1/models (None: no such endpoint, HTTP 404)
        self.models: list[str] | None = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if server.models is None or not self.path.endswith("/models"):
                    self._send(404, b'{"error": {"message": "not found"}}', {})
                    return
                data = [{"id": m, "object": "model", "owned_by": "me"} for m in server.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode(), {})

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(
                        {"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
                    )
                    action = server.script.pop(0) if server.script else None
                action = action or server.rule(user) or ("ok",)
                kind = action[0]
                if kind == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if kind == "sleep":
                    time.sleep(action[1])
                    kind = "ok"
                if kind == "status":
                    _, code, headers, *message = action
                    text = message[0] if message else f"fake {code}"
                    payload = json.dumps({"error": {"message": text, "type": "x"}})
                    self._send(code, payload.encode(), headers)
                    return
                if kind == "garbage":  # a 200 whose JSON body is cut off
                    self._send(200, b'{"id": "chatcmpl-fake", "choices": [{"ind', {})
                    return
                text = action[1] if kind == "text" else server.reply(user)
                response = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                }
                if kind == "nochoices":
                    response["choices"] = []
                self._send(200, json.dumps(response).encode(), {})

            def _send(self, code: int, payload: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

            def finish(self) -> None:
                try:
                    super().finish()
                except (OSError, ValueError):
                    pass

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def calls(self) -> int:
        return len(self.requests)


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


def make_backend(server: FakeChatServer, sleeps: list[float] | None = None, **options: Any):
    options.setdefault("backoff_base_s", 0.01)
    options.setdefault("timeout_s", 5.0)
    options.setdefault("base_url", server.base_url)
    recorder = sleeps.append if sleeps is not None else None
    return OpenAITranslator(sleep=recorder, **options)


def test_success_reports_text_tokens_and_sends_key_and_decoding(
    server: FakeChatServer, api_key: str
) -> None:
    backend = make_backend(server, seed=7)
    completion = backend.complete("SYS", "<frame0>\ndog\n</frame0>")
    assert completion.text == "<answer>The sound of a Thing0</answer>"
    assert (completion.prompt_tokens, completion.completion_tokens) == (100, 10)
    assert completion.latency_s >= 0
    (request,) = server.requests
    assert request["headers"]["authorization"] == f"Bearer {api_key}"
    assert request["body"]["model"] == "gpt-4o"
    assert request["body"]["temperature"] == 0.0 and request["body"]["seed"] == 7
    assert request["body"]["messages"][0] == {"role": "system", "content": "SYS"}
    identity = json.dumps(backend.identity())
    assert api_key not in identity and "127.0.0.1" not in identity


def test_missing_key_without_base_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY_VAR", raising=False)
    with pytest.raises(TranslatorError, match="MY_KEY_VAR is not set"):
        OpenAITranslator(api_key_env="MY_KEY_VAR")


def test_429_retry_after_is_honoured(server: FakeChatServer, api_key: str) -> None:
    server.script = [("status", 429, {"Retry-After": "2"}), ("status", 429, {})]
    sleeps: list[float] = []
    completion = make_backend(server, sleeps).complete("S", "<frame0>\nx\n</frame0>")
    assert completion.text.startswith("<answer>")
    assert server.calls == 3
    assert sleeps[0] == 2.0  # the server's wait, not the 0.01 s backoff
    assert 0.005 <= sleeps[1] <= 0.02  # jittered exponential backoff without Retry-After


def test_500_then_success_really_waits(server: FakeChatServer, api_key: str) -> None:
    server.script = [("status", 500, {}), ("status", 503, {})]
    t0 = time.monotonic()
    backend = make_backend(server, backoff_base_s=0.1)
    backend.complete("S", "<frame0>\nx\n</frame0>")
    assert server.calls == 3 and backend.attempts == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1  # >= half of 0.1 then half of 0.2


def test_timeout_is_retried(server: FakeChatServer, api_key: str) -> None:
    server.script = [("sleep", 1.5)]
    sleeps: list[float] = []
    completion = make_backend(server, sleeps, timeout_s=0.4).complete("S", "<frame0>\nx\n</frame0>")
    assert completion.text and server.calls == 2 and len(sleeps) == 1


def test_connection_reset_is_retried(server: FakeChatServer, api_key: str) -> None:
    server.script = [("reset",), ("reset",)]
    sleeps: list[float] = []
    completion = make_backend(server, sleeps).complete("S", "<frame0>\nx\n</frame0>")
    assert completion.text and server.calls == 3 and len(sleeps) == 2


def test_other_4xx_is_not_retried(server: FakeChatServer, api_key: str) -> None:
    server.script = [("status", 400, {})]
    with pytest.raises(TranslatorError, match="HTTP 400") as info:
        make_backend(server, []).complete("S", "<frame0>\nx\n</frame0>")
    assert server.calls == 1
    assert api_key not in str(info.value)


def test_gives_up_after_bounded_attempts(server: FakeChatServer, api_key: str) -> None:
    server.script = [("status", 500, {})] * 10
    sleeps: list[float] = []
    with pytest.raises(TranslatorError, match="failed after 3 attempt") as info:
        make_backend(server, sleeps, max_attempts=3).complete("S", "<frame0>\nx\n</frame0>")
    assert server.calls == 3 and len(sleeps) == 2
    assert "HTTP 500" in str(info.value)


def test_total_time_bound_stops_long_retry_after(server: FakeChatServer, api_key: str) -> None:
    server.script = [("status", 429, {"Retry-After": "120"})]
    sleeps: list[float] = []
    with pytest.raises(TranslatorError, match="max_total_s"):
        make_backend(server, sleeps, max_total_s=30).complete("S", "<frame0>\nx\n</frame0>")
    assert sleeps == [] and server.calls == 1


def test_malformed_body_and_empty_answers_are_retried(server: FakeChatServer, api_key: str) -> None:
    server.script = [("garbage",), ("nochoices",), ("text", "  "), ("text", "")]
    sleeps: list[float] = []
    backend = make_backend(server, sleeps)
    completion = backend.complete("S", "<frame0>\nx\n</frame0>")
    assert completion.text == "<answer>The sound of a Thing0</answer>"
    assert server.calls == 5 and len(sleeps) == 4


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (("status", 500, {}), "HTTP 500"),
        (("status", 429, {"Retry-After": "0"}), "HTTP 429"),
        (("reset",), "connection error"),
        (("garbage",), "malformed response body"),
        (("text", ""), "empty answer"),
    ],
)
def test_persistent_fault_raises_call_failed_with_a_stable_kind(
    server: FakeChatServer, api_key: str, action: tuple[Any, ...], kind: str
) -> None:
    server.rule = lambda user: action
    with pytest.raises(CallFailed, match="failed after 3 attempt") as info:
        make_backend(server, [], max_attempts=3).complete("S", "<frame0>\nx\n</frame0>")
    assert info.value.kind == kind and server.calls == 3


def test_401_is_fatal_and_never_shows_the_key(server: FakeChatServer, api_key: str) -> None:
    # A server that echoes the key, whole and masked the way api.openai.com does.
    masked = f"{api_key[:8]}****{api_key[-4:]}"
    server.script = [("status", 401, {}, f"Incorrect API key provided: {api_key} ({masked})")]
    backend = make_backend(server, [], base_url=server.base_url.replace("//", "//user:pw@"))
    with pytest.raises(TranslatorError, match="HTTP 401") as info:
        backend.complete("S", "<frame0>\nx\n</frame0>")
    assert not isinstance(info.value, CallFailed) and server.calls == 1
    message = str(info.value)
    assert api_key not in message and masked not in message and api_key[-12:] not in message
    assert "user:pw" not in message and "<redacted>" in message


def test_api_key_option_is_sent_and_redacted_like_the_variable(
    server: FakeChatServer, api_key: str
) -> None:
    """A key put in the config (``api_key``) wins over the variable and is as protected."""
    key = f"sk-cfg-{uuid.uuid4().hex}"
    masked = f"{key[:8]}****{key[-4:]}"
    server.script = [("status", 401, {}, f"Incorrect API key provided: {key} ({masked})")]
    backend = make_backend(server, [], api_key=key)
    with pytest.raises(TranslatorError, match="HTTP 401") as info:
        backend.complete("S", "<frame0>\nx\n</frame0>")
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {key}"
    message = str(info.value)
    assert key not in message and masked not in message and "<redacted>" in message
    assert key not in json.dumps(backend.identity())


def test_a_key_given_as_the_variable_name_is_refused_without_echoing_it() -> None:
    key = f"sk-proj-{uuid.uuid4().hex}"
    with pytest.raises(TranslatorError, match="must name the environment variable") as info:
        OpenAITranslator(api_key_env=key, base_url="http://127.0.0.1:9/v1")
    assert key not in str(info.value) and key[-12:] not in str(info.value)


# ---------------------------------------------------------------- shard runner


def write_alm(root: Path, prompt_key: str, clips: dict[str, list[str]]) -> Path:
    folder = root / "alm" / prompt_key
    for slug, texts in clips.items():
        atomic_write_json(
            folder / f"{slug}.json",
            {
                "clip": slug.replace("__", "/"),
                "prompt": prompt_key,
                "texts": texts,
                "alm_calls": len(texts),
            },
        )
    return folder


CLIPS_CAPTION = {
    "s4__dog1": ["a dog is barking", "a dog barks loudly", "", "a man speaks", "a dog"],
    "s4__car2": ["a car engine is revving", "engine", "engine", "wind", "a car passes"],
}
CLIPS_METADATA = {
    "s4__dog1": ["dog, bark", "dog", "silence", "speech", "dog"],
    "s4__car2": ["vehicle", "engine", "engine", "wind noise", "car"],
}


def run_shard(
    tmp_path: Path,
    server: FakeChatServer,
    strategy: str,
    offline: bool = False,
    prompts: tuple[str, ...] = ("caption",),
    out: str = "out",
    cache: str = "cache",
    **options: Any,
) -> Path:
    alm_dirs = {}
    if "caption" in prompts:
        alm_dirs["caption"] = write_alm(tmp_path, "caption", CLIPS_CAPTION)
    if "metadata" in prompts:
        alm_dirs["metadata"] = write_alm(tmp_path, "metadata", CLIPS_METADATA)
    out_dir = tmp_path / out
    translate_shard(
        alm_dirs=alm_dirs,
        clip_ids=list(CLIPS_CAPTION),
        backend="openai",
        backend_options={
            "base_url": server.base_url,
            "backoff_base_s": 0.01,
            "seed": 1,
            **options,
        },
        strategy=strategy,
        cache_dir=tmp_path / cache,
        out_dir=out_dir,
        offline=offline,
    )
    return out_dir


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a translation folder, by name (what "byte-identical" compares)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    ("strategy", "prompts", "calls_per_clip", "alm_calls"),
    [
        ("none", ("caption",), 5, 5),
        ("fc", ("caption",), 1, 5),
        ("pc", ("caption", "metadata"), 5, 10),
        ("pcfc", ("caption", "metadata"), 1, 10),
    ],
)
def test_shard_counts_calls_per_strategy(
    tmp_path: Path,
    server: FakeChatServer,
    api_key: str,
    strategy: str,
    prompts: tuple[str, ...],
    calls_per_clip: int,
    alm_calls: int,
) -> None:
    out_dir = run_shard(tmp_path, server, strategy, prompts=prompts)
    summary = read_json(out_dir / "_summary.json")
    assert summary["llm_requests"] == 2 * calls_per_clip
    # identical requests (the car clip's frames 1 and 2 say "engine") are asked once
    assert server.calls == summary["llm_distinct_requests"]
    assert summary["failed_calls"] == 0
    record = read_json(out_dir / "s4__dog1.json")
    assert record["clip"] == "s4/dog1" and record["strategy"] == strategy
    assert (
        record["prompts"] == ["thing0"] * 5
        if calls_per_clip == 5
        else [f"thing{i}" for i in range(5)]
    )
    assert record["llm_requests"] == calls_per_clip and record["failed_keys"] == []
    assert "llm_calls" not in record and "cache_hits" not in record  # run-dependent facts
    assert record["alm_calls"] == alm_calls
    assert record["prompt_tokens"] == 100 * calls_per_clip
    assert record["fallback_frames"] == []
    assert list(record["raw_texts"]) == list(prompts)
    assert len(record["cache_keys"]) == calls_per_clip
    assert summary["frames"] == 10
    if "metadata" in prompts:
        user = server.requests[0]["body"]["messages"][1]["content"]
        assert "<exp1>a dog is barking</exp1>\n<exp2>dog, bark</exp2>" in user


def test_warm_cache_makes_zero_calls_and_writes_identical_bytes(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    # a compatible endpoint is priced only as what the user vouches it serves
    vouch = {"price_as": "gpt-4o"}
    first = run_shard(tmp_path, server, "pc", prompts=("caption", "metadata"), out="first", **vouch)
    cold_calls = server.calls
    second = run_shard(
        tmp_path, server, "pc", prompts=("caption", "metadata"), out="second", **vouch
    )
    assert server.calls == cold_calls, "a warm cache must make zero backend calls"
    third = run_shard(
        tmp_path, server, "pc", prompts=("caption", "metadata"), offline=True, out="third", **vouch
    )
    assert server.calls == cold_calls
    assert tree_bytes(first) == tree_bytes(second) == tree_bytes(third)
    stats = cache_stats(tmp_path / "cache", [first, second])
    assert stats["calls"] == cold_calls == 9  # 10 requests, the car's "engine" frames once
    assert stats["prompt_tokens"] == 100 * cold_calls
    assert stats["cost_usd"] == pytest.approx(cold_calls * (100 * 2.5 + 10 * 10.0) / 1e6)
    assert stats["by_backend"]["openai/gpt-4o"]["calls"] == cold_calls
    usage = stats["runs"][str(second)]
    assert (usage["requests"], usage["calls"], usage["hits"], usage["failed_calls"]) == (
        10,
        9,
        1,
        0,
    )
    assert usage["prompt_tokens"] == 900 and usage["entries_missing"] == 0


def test_offline_miss_raises_naming_key_and_clip_without_calling_the_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ExplodingBackend:
        passthrough = False

        def identity(self) -> dict[str, Any]:
            return {"backend": "explode", "model": "x"}

        def complete(self, system: str, user: str) -> Any:
            raise AssertionError("offline replay contacted the backend")

    monkeypatch.setitem(TRANSLATORS._factories, "explode", ExplodingBackend)
    with pytest.raises(CacheMiss, match="s4/dog1") as info:
        translate_shard(
            alm_dirs={"caption": write_alm(tmp_path, "caption", CLIPS_CAPTION)},
            clip_ids=list(CLIPS_CAPTION),
            backend="explode",
            backend_options={},
            strategy="fc",
            cache_dir=tmp_path / "cache",
            out_dir=tmp_path / "out",
            offline=True,
        )
    assert len(info.value.key) == 64 and info.value.key in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I think it is a dog.", "no <answer>"),
        ("<answer>dog</answer><answer>dog</answer>", "got 2, expected 5"),
        ("<answer>dog</answer><answer>cat", "unbalanced <answer> tags"),
    ],
)
def test_malformed_or_short_reply_falls_back_to_raw_text(
    tmp_path: Path, server: FakeChatServer, api_key: str, reply: str, reason: str
) -> None:
    server.reply = lambda user: reply if "dog" in user else default_reply(user)
    out_dir = run_shard(tmp_path, server, "fc")
    dog = read_json(out_dir / "s4__dog1.json")
    assert dog["fallback_frames"] == [0, 1, 2, 3, 4] and dog["failed_calls"] == 0
    assert dog["prompts"] == CLIPS_CAPTION["s4__dog1"]  # raw ALM text, frame 2 silent in the ALM
    assert all(reason in r for r in dog["fallback_reasons"])
    car = read_json(out_dir / "s4__car2.json")
    assert car["fallback_frames"] == [] and car["prompts"][0] == "thing0"
    summary = read_json(out_dir / "_summary.json")
    assert summary["fallback_frames"] == 5 and summary["fallback_clips"] == {
        "s4__dog1": [0, 1, 2, 3, 4]
    }


TRANSIENT_FAULTS = {
    "429": ("status", 429, {"Retry-After": "7"}),
    "500": ("status", 500, {}),
    "timeout": ("sleep", 1.0),
    "reset": ("reset",),
    "garbage": ("garbage",),
    "empty": ("text", ""),
    "no-choices": ("nochoices",),
}


@pytest.mark.parametrize("fault", list(TRANSIENT_FAULTS))
def test_transient_fault_is_retried_to_the_same_bytes(
    tmp_path: Path, server: FakeChatServer, api_key: str, fault: str
) -> None:
    clean = run_shard(tmp_path, server, "fc", out="clean", cache="cache-clean")
    server.script = [TRANSIENT_FAULTS[fault]] * 2
    sleeps: list[float] = []
    faulty = run_shard(tmp_path, server, "fc", out="faulty", sleep=sleeps.append, timeout_s=0.3)
    assert tree_bytes(faulty) == tree_bytes(clean)
    assert server.calls == 2 + 2 + 2  # clean run, two faults, then the two clips
    assert len(sleeps) == 2
    if fault == "429":
        assert sleeps == [7.0, 7.0]  # Retry-After honoured (sleep is mocked: no real wait)


@pytest.mark.parametrize("fault", ["500", "timeout", "reset", "garbage", "empty", "no-choices"])
def test_persistent_fault_is_recorded_as_fallback_and_counted(
    tmp_path: Path, server: FakeChatServer, api_key: str, fault: str
) -> None:
    action = TRANSIENT_FAULTS[fault]
    server.rule = lambda user: action if "dog" in user else None
    out_dir = run_shard(
        tmp_path,
        server,
        "fc",
        max_attempts=2,
        sleep=lambda s: None,
        timeout_s=0.3,
        failure_policy="fallback",
    )
    dog = read_json(out_dir / "s4__dog1.json")
    assert dog["prompts"] == CLIPS_CAPTION["s4__dog1"]  # raw ALM text, never an empty prompt
    assert dog["failed_calls"] == 1 and len(dog["failed_keys"]) == 1 and dog["cache_keys"] == []
    assert dog["llm_requests"] == 1 and dog["fallback_frames"] == [0, 1, 2, 3, 4]
    kind = {"timeout": "timeout", "reset": "connection error", "garbage": "malformed"}.get(
        fault, "empty answer" if fault in ("empty", "no-choices") else f"HTTP {fault}"
    )
    assert all("LLM call failed after retries" in r and kind in r for r in dog["fallback_reasons"])
    assert api_key not in json.dumps(dog)
    summary = read_json(out_dir / "_summary.json")
    assert summary["failed_calls"] == 1 and summary["fallback_frames"] == 5
    assert read_json(out_dir / "s4__car2.json")["prompts"][0] == "thing0"
    # failures are never cached: once the server recovers, a re-run fills the key
    assert not CallCache(tmp_path / "cache").entry_path(dog["failed_keys"][0]).exists()
    server.rule = lambda user: None
    again = read_json(run_shard(tmp_path, server, "fc", out="again") / "s4__dog1.json")
    assert again["cache_keys"] == dog["failed_keys"] and again["failed_calls"] == 0


def test_shard_where_every_call_fails_fails_and_leaves_no_output(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    old = tmp_path / "out"
    atomic_write_json(old / "marker.json", {"earlier": True})
    server.rule = lambda user: ("status", 500, {})
    with pytest.raises(TranslatorError, match="all 2 LLM requests of the shard failed"):
        run_shard(tmp_path, server, "fc", max_attempts=2, backoff_base_s=0.001)
    assert read_json(old / "marker.json") == {"earlier": True}  # earlier artifact intact
    assert not list((tmp_path / "cache").glob("*/*.json"))  # failed calls are not cached


def test_refused_request_fails_the_job(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    server.script = [("ok",), ("status", 403, {})]
    with pytest.raises(TranslatorError, match="HTTP 403"):
        run_shard(tmp_path, server, "fc")
    assert not (tmp_path / "out").exists() and server.calls == 2


def test_api_key_appears_in_no_file(tmp_path: Path, server: FakeChatServer, api_key: str) -> None:
    run_shard(tmp_path, server, "pcfc", prompts=("caption", "metadata"))
    run_shard(tmp_path, server, "none", out="out2")
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {api_key}"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        assert api_key.encode() not in path.read_bytes(), path
    assert "openai" in TRANSLATORS


def test_retry_after_header_forms() -> None:
    import email.utils

    from avsbridge.translate.openai_backend import _retry_after_s

    assert _retry_after_s({"retry-after": "3"}) == 3.0
    assert _retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (_retry_after_s({"retry-after": future}) or 0) <= 31
    assert _retry_after_s({"retry-after": "soon"}) is None
    assert _retry_after_s({}) is None
