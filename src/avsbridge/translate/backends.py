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


class TranslatorError(RuntimeError):
    """A backend could not answer (after its retries): the job must fail loudly."""


@runtime_checkable
class Translator(Protocol):
    """What every translator backend provides."""

    #: True for the "w/o LLM" backend: the runner passes the raw ALM text through.
    passthrough: bool

    def complete(self, system: str, user: str) -> Completion: ...

    def identity(self) -> dict[str, Any]: ...


TRANSLATORS: Registry[Translator] = Registry("translator")
