"""The openai backend and the shard runner against a local Chat Completions server.

The server (127.0.0.1, random port) answers from a script of faults, then with a
well-formed reply; it counts every request, so "zero calls on a warm cache" is
measured at the wire.
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
from avsbridge.translate import TRANSLATORS, CacheMiss, TranslatorError, cache_stats
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
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(
                        {"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
                    )
                    action = server.script.pop(0) if server.script else ("ok",)
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
                    _, code, headers = action
                    payload = json.dumps({"error": {"message": f"fake {code}", "type": "x"}})
                    self._send(code, payload.encode(), headers)
                    return
                if kind == "text":
                    text = action[1]
                else:
                    user = body["messages"][-1]["content"]
                    text = server.reply(user)
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
    recorder = sleeps.append if sleeps is not None else None
    return OpenAITranslator(base_url=server.base_url, sleep=recorder, **options)


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
        backend_options={"base_url": server.base_url, "backoff_base_s": 0.01, "seed": 1},
        strategy=strategy,
        cache_dir=tmp_path / "cache",
        out_dir=out_dir,
        offline=offline,
    )
    return out_dir


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
    assert server.calls == summary["llm_calls"]
    assert summary["llm_calls"] + summary["cache_hits"] == summary["llm_requests"]
    record = read_json(out_dir / "s4__dog1.json")
    assert record["clip"] == "s4/dog1" and record["strategy"] == strategy
    assert (
        record["prompts"] == ["thing0"] * 5
        if calls_per_clip == 5
        else [f"thing{i}" for i in range(5)]
    )
    assert record["llm_calls"] == calls_per_clip and record["cache_hits"] == 0
    assert record["alm_calls"] == alm_calls
    assert record["prompt_tokens"] == 100 * calls_per_clip
    assert record["fallback_frames"] == []
    assert list(record["raw_texts"]) == list(prompts)
    assert len(record["cache_keys"]) == calls_per_clip
    assert summary["frames"] == 10
    if "metadata" in prompts:
        user = server.requests[0]["body"]["messages"][1]["content"]
        assert "<exp1>a dog is barking</exp1>\n<exp2>dog, bark</exp2>" in user


def test_warm_cache_makes_zero_calls_and_offline_replays(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    first = read_json(run_shard(tmp_path, server, "fc", out="first") / "s4__car2.json")
    assert server.calls == 2
    second = read_json(run_shard(tmp_path, server, "fc", out="second") / "s4__car2.json")
    assert server.calls == 2, "a warm cache must make zero backend calls"
    assert second["cache_hits"] == 1 and second["llm_calls"] == 0
    assert second["prompts"] == first["prompts"] and second["cache_keys"] == first["cache_keys"]
    assert second["prompt_tokens"] == first["prompt_tokens"]
    replay = read_json(
        run_shard(tmp_path, server, "fc", offline=True, out="third") / "s4__car2.json"
    )
    assert replay["prompts"] == first["prompts"] and server.calls == 2
    stats = cache_stats(tmp_path / "cache", [tmp_path / "first", tmp_path / "second"])
    assert stats["calls"] == 2 and stats["prompt_tokens"] == 200
    assert stats["cost_usd"] == pytest.approx(2 * (100 * 2.5 + 10 * 10.0) / 1e6)
    assert stats["by_backend"]["openai/gpt-4o"]["calls"] == 2
    assert stats["runs"][str(tmp_path / "second")] == {
        "llm_requests": 2,
        "llm_calls": 0,
        "cache_hits": 2,
    }


def test_offline_miss_raises_naming_key_and_clip(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    with pytest.raises(CacheMiss, match="s4/dog1") as info:
        run_shard(tmp_path, server, "fc", offline=True)
    assert len(info.value.key) == 64 and info.value.key in str(info.value)
    assert server.calls == 0
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("I think it is a dog.", "no <answer>"),
        ("<answer>dog</answer><answer>dog</answer>", "got 2, expected 5"),
    ],
)
def test_malformed_or_short_reply_falls_back_to_raw_text(
    tmp_path: Path, server: FakeChatServer, api_key: str, reply: str, reason: str
) -> None:
    server.reply = lambda user: reply if "dog" in user else default_reply(user)
    out_dir = run_shard(tmp_path, server, "fc")
    dog = read_json(out_dir / "s4__dog1.json")
    assert dog["fallback_frames"] == [0, 1, 2, 3, 4]
    assert dog["prompts"] == CLIPS_CAPTION["s4__dog1"]  # raw ALM text, frame 2 silent in the ALM
    assert all(reason in r for r in dog["fallback_reasons"])
    car = read_json(out_dir / "s4__car2.json")
    assert car["fallback_frames"] == [] and car["prompts"][0] == "thing0"
    summary = read_json(out_dir / "_summary.json")
    assert summary["fallback_frames"] == 5 and summary["fallback_clips"] == {
        "s4__dog1": [0, 1, 2, 3, 4]
    }


def test_backend_failure_fails_job_and_leaves_no_output(
    tmp_path: Path, server: FakeChatServer, api_key: str
) -> None:
    old = tmp_path / "out"
    atomic_write_json(old / "marker.json", {"earlier": True})
    server.script = [("status", 500, {})] * 20
    with pytest.raises(TranslatorError, match="failed after"):
        translate_shard(
            alm_dirs={"caption": write_alm(tmp_path, "caption", CLIPS_CAPTION)},
            clip_ids=list(CLIPS_CAPTION),
            backend="openai",
            backend_options={
                "base_url": server.base_url,
                "backoff_base_s": 0.001,
                "max_attempts": 2,
            },
            strategy="fc",
            cache_dir=tmp_path / "cache",
            out_dir=old,
        )
    assert read_json(old / "marker.json") == {"earlier": True}  # earlier artifact intact
    assert not list((tmp_path / "cache").glob("*/*.json"))  # failed calls are not cached


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
