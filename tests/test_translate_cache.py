"""The call cache: keys, offline replay, entries, stats, corrupt entries.

Concurrent writers and kill -9: tests/test_cache_concurrency.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avsbridge.io import ArtifactError, atomic_write_json
from avsbridge.translate.backends import Completion
from avsbridge.translate.cache import CacheMiss, CallCache, cache_stats, cost_usd, request_key


class EchoBackend:
    """Deterministic stand-in: the answer is a function of the prompt only."""

    passthrough = False

    def __init__(self) -> None:
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"backend": "echo", "model": "echo-1"}

    def complete(self, system: str, user: str) -> Completion:
        self.calls += 1
        # a long body so a torn write would be visible as invalid JSON
        return Completion(f"<answer>{user}</answer>" + " pad" * 2000, 7, 3, 0.001)


def test_key_depends_on_identity_and_prompts() -> None:
    base = request_key({"backend": "openai", "model": "gpt-4o", "seed": 0}, "s", "u")
    assert base == request_key({"seed": 0, "model": "gpt-4o", "backend": "openai"}, "s", "u")
    assert base != request_key({"backend": "openai", "model": "gpt-4o", "seed": 1}, "s", "u")
    assert base != request_key({"backend": "openai", "model": "gpt-4o", "seed": 0}, "s2", "u")
    assert base != request_key({"backend": "openai", "model": "gpt-4o", "seed": 0}, "s", "u2")


def test_offline_miss_and_hit(tmp_path: Path) -> None:
    backend = EchoBackend()
    CallCache(tmp_path).complete(backend, "s", "known", clip="a")
    replay = CallCache(tmp_path, offline=True)
    assert replay.complete(backend, "s", "known", clip="a").hit
    with pytest.raises(CacheMiss, match="clip 'b'"):
        replay.complete(backend, "s", "unknown", clip="b")
    assert backend.calls == 1


def test_entry_records_request_response_cost(tmp_path: Path) -> None:
    backend = EchoBackend()
    result = CallCache(tmp_path).complete(backend, "s", "u", clip="a")
    entry = json.loads(CallCache(tmp_path).entry_path(result.key).read_text())
    assert entry["request"] == {"backend": backend.identity(), "system": "s", "user": "u"}
    assert entry["response"]["prompt_tokens"] == 7 and entry["cost_usd"] is None  # unpriced model
    assert entry["created"].endswith("+00:00")
    assert cost_usd({"backend": "local", "model": "x"}, 10, 10) == 0.0
    assert cost_usd({"backend": "openai", "model": "gpt-4o-mini"}, 1_000_000, 0) == 0.15


def test_stats_count_unpriced_calls(tmp_path: Path) -> None:
    backend = EchoBackend()
    cache = CallCache(tmp_path)
    for user in ("a", "b", "a"):
        cache.complete(backend, "s", user, clip="x")
    stats = cache_stats(tmp_path)
    assert stats["calls"] == 2 and stats["calls_without_price"] == 2
    assert stats["by_backend"]["echo/echo-1"]["completion_tokens"] == 6
    assert cache_stats(tmp_path / "missing")["calls"] == 0


def test_corrupt_entry_is_named(tmp_path: Path) -> None:
    backend = EchoBackend()
    result = CallCache(tmp_path).complete(backend, "s", "u", clip="a")
    path = CallCache(tmp_path).entry_path(result.key)
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match=result.key):
        CallCache(tmp_path).complete(backend, "s", "u", clip="a")
    atomic_write_json(
        path, {"key": "other", "request": {}, "response": {"text": ""}, "latency_s": 0}
    )
    with pytest.raises(ArtifactError, match="expected"):
        CallCache(tmp_path).get(result.key)
    with pytest.raises(ArtifactError):
        cache_stats(tmp_path)
