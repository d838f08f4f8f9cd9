"""The translator backend interface and its registry.

A backend answers ``complete(system, user)`` and describes itself with
``identity()`` -- backend, model and decoding parameters, never a secret -- which
is what the call cache keys on: the same identity and prompts give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from avsbridge.registry import Registry


@dataclass(frozen=True)
class Completion:
    """One LLM reply with the accounting the reports need."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    #: The model the server says answered (may differ from the configured name).
    model: str | None = None


class TranslatorError(RuntimeError):
    """A backend could not answer (after its retries): the job must fail loudly."""


class EndpointDown(TranslatorError):
    """The service cannot be reached at all (repeated connection failures): stop the shard."""


class CallFailed(TranslatorError):
    """One call kept failing with a transient fault (429, 5xx, timeout, bad body).

    The runner records it (frames fall back to the raw ALM text, counted) instead of
    failing the job; ``kind`` is a short stable label for the record, the message
    holds the details for the log. Configuration errors (401, 400) stay plain
    :class:`TranslatorError`: they would fail every call.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@runtime_checkable
class Translator(Protocol):
    """What every translator backend provides."""

    #: True for the "w/o LLM" backend: the runner passes the raw ALM text through.
    passthrough: bool

    def complete(self, system: str, user: str) -> Completion: ...

    def identity(self) -> dict[str, Any]: ...


TRANSLATORS: Registry[Translator] = Registry("translator", "avsbridge.translate")
