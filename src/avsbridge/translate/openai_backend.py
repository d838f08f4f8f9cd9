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
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from avsbridge.translate.backends import TRANSLATORS, CallFailed, Completion, TranslatorError

DEFAULT_MODEL = "gpt-4o"
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
        max_tokens: int | None = None,
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
        return {
            "backend": "openai",
            "model": self.model,
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }

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
        kwargs: dict[str, Any] = {"temperature": self.temperature}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
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
            latency = time.monotonic() - t0
            usage = getattr(response, "usage", None)
            return Completion(
                text=text,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                latency_s=latency,
            )
        raise CallFailed(
            self._redact(
                f"openai backend: {self.model} at {where} failed after {attempt} attempt(s) "
                f"over {time.monotonic() - started:.1f}s; last error: {last}"
            ),
            kind=kind,
        )


TRANSLATORS.register("openai", mem_mb=500)(OpenAITranslator)
