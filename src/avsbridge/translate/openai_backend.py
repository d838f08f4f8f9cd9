"""OpenAI Chat Completions backend (GPT-4o by default, or any compatible server).

Works against vLLM / Ollama / llama.cpp servers through ``base_url``. The client's
own retries are switched off (``max_retries=0``) so that one policy, ours, decides:
exponential backoff with jitter, bounded in attempts and total time, honouring
Retry-After on 429, retrying 5xx, timeouts, dropped connections, unparseable bodies
and empty answers, never other 4xx. A call that still fails raises
:class:`CallFailed` (the runner records it as a fallback); a refused request (401,
400...) raises :class:`TranslatorError` (the job fails). The API key is read from
an environment variable at construction (or, discouraged, from an ``api_key``
option in the config) and never enters ``identity()``, the cache, or any message
we raise (it is redacted even if a server echoes it); provenance records drop the
option (:func:`avsbridge.provenance.records.scrub`).

Answer format: ``max_tokens`` (default :data:`DEFAULT_MAX_TOKENS`, so a chatty
model cannot run to its context length), ``stop`` and pass-through
``response_format`` / ``extra_body`` (server-specific fields, e.g. a llama.cpp
grammar); all of them shape the answer, so all are in ``identity()``.

Identity: local servers answer under any name (llama.cpp serves its one model as
``gpt-4o`` if asked), so ``identity()`` says whether the endpoint is OpenAI's own
(``provider``), a model given as a file path is keyed by its file name (the cache
key does not depend on where the file lives), every answer records the model the
server reports (its ``/v1/models`` list when that names one model, else the reply's
``model``), and :meth:`OpenAITranslator.pricing` prices only what is known to be
the priced model: OpenAI's endpoint, or a compatible one with ``price_as``.

Fail-fast: ``max_connection_failures`` connection failures in a row (across
requests, no reply in between) raise :class:`EndpointDown` with one message naming
the endpoint, instead of every request of a shard retrying for its full budget.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

from avsbridge.translate.backends import (
    TRANSLATORS,
    CallFailed,
    Completion,
    EndpointDown,
    TranslatorError,
)
from avsbridge.translate.cache import FREE
from avsbridge.translate.prompts import price_per_1m_tokens

log = logging.getLogger("avsbridge.translate.openai")

DEFAULT_MODEL = "gpt-4o"
# Enough for one <answer> per frame of the longest Appendix A request (10 frames).
DEFAULT_MAX_TOKENS = 512
OPENAI_HOSTS = {"api.openai.com"}
_MODEL_FILE_SUFFIXES = (".gguf", ".bin", ".safetensors", ".pt", ".onnx")
# Local OpenAI-compatible servers accept any key; the client refuses an empty one.
PLACEHOLDER_KEY_FOR_LOCAL_SERVERS = "no-key"
# Anything shaped like an OpenAI-style key (servers echo masked or whole keys in 401s).
_KEY_LIKE_RE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-*.]{6,}")


def _host_of(base_url: str | None) -> str:
    """``base_url`` for messages: scheme, host and path, never user:password@ or a query."""
    if base_url is None:
        return "api.openai.com"
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "<base_url>"


def is_openai_endpoint(base_url: str | None) -> bool:
    """True for OpenAI's own API (no base_url, or its host), where names mean the model."""
    if base_url is None:
        return True
    return (urllib.parse.urlsplit(base_url).hostname or "") in OPENAI_HOSTS


def model_key(name: str) -> str:
    """A model name for cache keys: a file path becomes its file name (location-free)."""
    looks_like_path = (
        name.startswith(("/", "./", "../", "~"))
        or "\\" in name
        or name.lower().endswith(_MODEL_FILE_SUFFIXES)
    )
    if looks_like_path:
        return PurePath(name.replace("\\", "/")).name
    return name


class _BadReply(Exception):
    """A 200 response without a usable answer (no choices, empty content)."""


def _retry_after_s(headers: Any) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, Retry-After secs or date)."""
    if headers is None:
        return None
    value_ms = headers.get("retry-after-ms")
    if value_ms:
        try:
            return max(0.0, float(value_ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unparseable: fall back to our own backoff
    return max(0.0, parsed.timestamp() - time.time())


class OpenAITranslator:
    """Chat Completions client with a bounded, jittered retry policy."""

    passthrough = False

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        api_key: str | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        stop: str | Sequence[str] | None = None,
        response_format: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        price_as: str | None = None,
        max_connection_failures: int = 4,
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_total_s: float = 600.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        import openai

        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if max_connection_failures < 1:
            raise ValueError("max_connection_failures must be >= 1")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError("max_tokens must be >= 1 (or None for the server's limit)")
        for name, value in (("response_format", response_format), ("extra_body", extra_body)):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
        if price_as is not None and price_as != FREE and price_per_1m_tokens(price_as) is None:
            raise ValueError(
                f"price_as={price_as!r} is not in the price table (translator_prompts.yaml "
                f"prices); use a listed model or {FREE!r}"
            )
        if _KEY_LIKE_RE.search(api_key_env):  # the key itself, not its variable's name
            raise TranslatorError(
                "openai backend: api_key_env holds what looks like an API key; it must name "
                "the environment variable that holds the key (e.g. OPENAI_API_KEY)"
            )
        # An explicit key wins, as in the openai client; the variable is the safer place
        # (a config file gets committed, copied into bug reports, tracked by DVC).
        api_key = api_key or os.environ.get(api_key_env, "")
        if not api_key:
            if base_url is None:
                raise TranslatorError(
                    f"openai backend: environment variable {api_key_env} is not set "
                    "(set it, or point base_url at a local OpenAI-compatible server)"
                )
            api_key = PLACEHOLDER_KEY_FOR_LOCAL_SERVERS
        self.model = model
        self.base_url = base_url
        self.temperature = float(temperature)
        self.seed = seed
        self.max_tokens = max_tokens
        self.stop = [stop] if isinstance(stop, str) else (list(stop) if stop else None)
        self.response_format = dict(response_format) if response_format else None
        self.extra_body = dict(extra_body) if extra_body else None
        self.official = is_openai_endpoint(base_url)
        self.price_as = price_as
        self.max_connection_failures = int(max_connection_failures)
        self._connection_failures = 0
        self._served: list[str] | None = None
        self._warned = False
        self.timeout_s = float(timeout_s)
        self.max_attempts = int(max_attempts)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_total_s = float(max_total_s)
        self._secret = api_key
        self._sleep = sleep or time.sleep
        self._jitter = random.Random()
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=self.timeout_s, max_retries=0
        )
        #: Every HTTP attempt made, including failed ones (for reports and tests).
        self.attempts = 0

    def identity(self) -> dict[str, Any]:
        # base_url is left out on purpose: it may carry credentials and a cached answer
        # stays valid whichever host served the same model with the same decoding.
        # provider keeps a self-hosted model named "gpt-4o" apart from OpenAI's.
        return {
            "backend": "openai",
            "provider": "openai" if self.official else "compatible",
            "model": model_key(self.model),
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "response_format": self.response_format,
            "extra_body": self.extra_body,
        }

    def served_models(self) -> list[str]:
        """Model ids the server lists at ``/v1/models`` (file names), asked once; [] if none."""
        if self._served is None:
            try:
                listed = self._client.models.list()
                self._served = [model_key(str(m.id)) for m in getattr(listed, "data", [])]
            except Exception as exc:  # noqa: BLE001 - optional endpoint; the reply's model stays
                log.info("no model list at %s: %s", _host_of(self.base_url), self._redact(str(exc)))
                self._served = []
        return self._served

    def _reported_model(self, response: Any) -> str | None:
        """What served the request: a compatible server's one listed model, else the reply's."""
        replied = getattr(response, "model", None)
        replied = model_key(replied) if isinstance(replied, str) and replied else None
        if self.official:
            return replied
        served = self.served_models()
        reported = served[0] if len(served) == 1 else replied
        if reported and reported != model_key(self.model) and not self._warned:
            self._warned = True
            log.warning(
                "server at %s answered for model %r with %r",
                _host_of(self.base_url),
                self.model,
                reported,
            )
        return reported

    def pricing(self, completion: Completion) -> str | None:
        """The price-table model this answer is billed as, ``"free"``, or None (unknown).

        On OpenAI's endpoint the reported snapshot if priced, else the configured
        name; elsewhere only what the user vouches for with ``price_as``.
        """
        if not self.official:
            return self.price_as
        return completion.model or self.model

    def _backoff_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * self._jitter.random())

    def _redact(self, text: str) -> str:
        """``text`` without the API key (whole or key-shaped fragments)."""
        if self._secret and self._secret != PLACEHOLDER_KEY_FOR_LOCAL_SERVERS:
            text = text.replace(self._secret, "<redacted>")
        return _KEY_LIKE_RE.sub("<redacted>", text)

    def _classify(self, exc: Exception) -> tuple[bool, float | None, str, str]:
        """(retryable, server-requested wait, stable kind, description) of one failure."""
        openai = self._openai
        if isinstance(exc, _BadReply):
            return True, None, str(exc), str(exc)
        if isinstance(exc, openai.APITimeoutError):
            return True, None, "timeout", f"timeout after {self.timeout_s:g}s"
        if isinstance(exc, openai.APIConnectionError):
            return True, None, "connection error", f"connection error ({exc.__cause__ or exc})"
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = f"HTTP {status}: {exc.message}"
            if status == 429 or status >= 500:
                return True, _retry_after_s(exc.response.headers), f"HTTP {status}", detail
            return False, None, f"HTTP {status}", detail
        if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError):
            return True, None, "malformed response body", f"malformed response body ({exc})"
        return False, None, type(exc).__name__, f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _answer_text(response: Any) -> str:
        """The first choice's text; :class:`_BadReply` when there is none to use."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list):
            raise _BadReply("malformed response body")
        if not choices:
            raise _BadReply("empty answer")
        text = getattr(getattr(choices[0], "message", None), "content", None)
        if not isinstance(text, str) or not text.strip():
            raise _BadReply("empty answer")
        return text

    def complete(self, system: str, user: str) -> Completion:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return self.complete_messages(messages)

    def complete_messages(self, messages: list[dict[str, Any]]) -> Completion:
        """One chat request (any message list, e.g. with image parts) under the retry policy."""
        kwargs: dict[str, Any] = {"temperature": self.temperature}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.stop:
            kwargs["stop"] = self.stop
        if self.response_format:
            kwargs["response_format"] = self.response_format
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        where = _host_of(self.base_url)
        started = time.monotonic()
        last = kind = ""
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            t0 = time.monotonic()
            try:
                response = self._client.chat.completions.create(
                    model=self.model, messages=messages, **kwargs
                )
                text = self._answer_text(response)
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised if fatal
                retryable, wait_s, kind, last = self._classify(exc)
                last = self._redact(last)
                if kind == "connection error":
                    self._connection_failures += 1
                    if self._connection_failures >= self.max_connection_failures:
                        raise EndpointDown(
                            self._redact(
                                f"openai backend: cannot reach {where}: "
                                f"{self._connection_failures} connection attempts in a row "
                                f"failed (last: {last}); is the server running?"
                            )
                        ) from None
                elif kind != "timeout":  # the server answered: it is up
                    self._connection_failures = 0
                if not retryable:
                    raise TranslatorError(
                        self._redact(
                            f"openai backend: {self.model} at {where} refused the request: {last}"
                        )
                    ) from None
                if attempt == self.max_attempts:
                    break
                delay = self._backoff_s(attempt) if wait_s is None else wait_s
                if time.monotonic() - started + delay > self.max_total_s:
                    last += (
                        f" (next wait {delay:.1f}s would exceed max_total_s={self.max_total_s:g})"
                    )
                    break
                self._sleep(delay)
                continue
            self._connection_failures = 0
            latency = time.monotonic() - t0
            usage = getattr(response, "usage", None)
            return Completion(
                text=text,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                latency_s=latency,
                model=self._reported_model(response),
            )
        raise CallFailed(
            self._redact(
                f"openai backend: {self.model} at {where} failed after {attempt} attempt(s) "
                f"over {time.monotonic() - started:.1f}s; last error: {last}"
            ),
            kind=kind,
        )


TRANSLATORS.register("openai", mem_mb=500)(OpenAITranslator)
