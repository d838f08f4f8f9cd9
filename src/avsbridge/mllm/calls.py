"""Every model call of the answer, scene and cue stages: through the one LLM call cache.

Nothing here is a second cache: :class:`avsbridge.translate.cache.CallCache` keys,
stores and replays (offline) every request, the backends' own retry policies handle
429 / 5xx / timeouts / unparseable bodies (:class:`CallFailed` when they give up),
and the failure policy is the translate stage's (``fail`` | ``fallback``, see
:mod:`avsbridge.translate.run`). This module adds the per-record accounting those
stages share: each request is counted, answered ones name their cache key, failed
ones the key a re-run would fill, and an empty or unparseable answer is counted as
``malformed`` with its reason -- never stored as a silent empty answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from avsbridge.translate.backends import CallFailed, Completion, TranslatorError
from avsbridge.translate.cache import CallCache, request_key
from avsbridge.translate.run import FAILURE_POLICIES

log = logging.getLogger("avsbridge.mllm.calls")


@dataclass
class Ledger:
    """Run-dependent call counts of one shard (logged, never written into artifacts)."""

    hits: int = 0
    calls: int = 0
    failed: int = 0
    malformed: int = 0
    last_error: str = ""

    @property
    def answered(self) -> int:
        return self.hits + self.calls


@dataclass(frozen=True)
class Answer:
    """One request's outcome: ``text`` None means failed or malformed (``problem`` says why)."""

    text: str | None
    key: str
    problem: str = ""
    failed: bool = False


@dataclass
class Counters:
    """Per-record (clip) call accounting: cache-independent, so cold and warm runs agree."""

    llm_requests: int = 0
    failed_calls: int = 0
    malformed_answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_keys: list[str] = field(default_factory=list)
    failed_keys: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "llm_requests": self.llm_requests,
            "failed_calls": self.failed_calls,
            "malformed_answers": self.malformed_answers,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cache_keys": list(self.cache_keys),
            "failed_keys": list(self.failed_keys),
        }


COUNTER_FIELDS = ("llm_requests", "failed_calls", "malformed_answers")


def check_failure_policy(options: dict[str, Any]) -> str:
    """Pop ``failure_policy`` from a backend's options (a runner option, as for translate)."""
    policy = str(options.pop("failure_policy", None) or "fail")
    if policy not in FAILURE_POLICIES:
        raise ValueError(
            f"failure_policy must be one of {', '.join(FAILURE_POLICIES)}, got {policy!r}"
        )
    return policy


def ask(
    cache: CallCache,
    backend: Any,
    system: str,
    user: str,
    clip: str,
    counters: Counters,
    ledger: Ledger,
    attachments: Sequence[str] | None = None,
    call: Callable[[], Completion] | None = None,
) -> Answer:
    """One request through the cache, counted in ``counters`` and ``ledger``.

    A call that keeps failing (:class:`CallFailed`) is recorded and returns no text;
    a refused request, an unreachable endpoint or an offline cache miss propagate (the
    job fails). An empty answer is malformed: counted, and no text.
    """
    counters.llm_requests += 1
    try:
        cached = cache.complete(
            backend, system, user, clip=clip, attachments=attachments, call=call
        )
    except CallFailed as exc:
        key = request_key(backend.identity(), system, user, attachments)
        log.warning("model call failed clip=%s key=%s: %s", clip, key, exc)
        ledger.failed += 1
        ledger.last_error = str(exc)
        counters.failed_calls += 1
        counters.failed_keys.append(key)
        return Answer(None, key, f"call failed after retries: {exc.kind}", failed=True)
    ledger.hits += cached.hit
    ledger.calls += not cached.hit
    log.info(
        "model %s clip=%s key=%s latency=%.3fs",
        "hit" if cached.hit else "call",
        clip,
        cached.key,
        cached.completion.latency_s,
    )
    counters.prompt_tokens += cached.completion.prompt_tokens
    counters.completion_tokens += cached.completion.completion_tokens
    counters.cache_keys.append(cached.key)
    if not cached.completion.text.strip():
        return malformed(counters, ledger, cached.key, "empty answer")
    return Answer(cached.completion.text, cached.key)


def malformed(counters: Counters, ledger: Ledger, key: str, problem: str) -> Answer:
    """An answer that came back but cannot be used: counted, with the reason and its key."""
    counters.malformed_answers += 1
    ledger.malformed += 1
    return Answer(None, key, f"malformed answer: {problem} (cache key {key})")


def finish_shard(ledger: Ledger, policy: str, what: str) -> None:
    """The translate stage's failure policy at the end of a shard (answers are cached)."""
    log.info(
        "%s: %d cache hits, %d backend calls, %d failed, %d malformed",
        what,
        ledger.hits,
        ledger.calls,
        ledger.failed,
        ledger.malformed,
    )
    if ledger.failed and not ledger.answered:
        raise TranslatorError(
            f"{what}: all {ledger.failed} model requests failed; last: {ledger.last_error}"
        )
    if ledger.failed and policy == "fail":
        raise TranslatorError(
            f"{what}: {ledger.failed} of {ledger.failed + ledger.answered} model requests failed "
            f"after retries (failure_policy=fail); the {ledger.answered} answered ones are "
            f"cached, so a re-run calls only the failed ones; last error: {ledger.last_error}"
        )
