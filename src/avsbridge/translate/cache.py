"""Content-addressed, auditable LLM call cache (a folder that DVC tracks).

Key = ``content_key({backend identity, system, user})``; entry file
``{key[:2]}/{key}.json`` holds the request (minus secrets: the identity never holds
one), the response text, tokens, latency, a cost estimate and the creation time.
Each entry is written to a temp file and renamed into place, so any number of
concurrent writers (Snakemake jobs, processes) can only ever leave complete files;
the same key always carries the same answer, so last-writer-wins is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, atomic_write_json, content_key, read_json
from avsbridge.translate.backends import Completion, Translator
from avsbridge.translate.prompts import price_per_1m_tokens

CACHE_FORMAT = 1


class CacheMiss(LookupError):
    """Offline replay asked for a call that is not in the cache."""

    def __init__(self, key: str, clip: str, cache_dir: Path) -> None:
        self.key = key
        self.clip = clip
        super().__init__(
            f"LLM cache miss in offline mode: key {key} for clip {clip!r} is not in {cache_dir} "
            "(run online once, or pull the cache with `dvc pull`)"
        )


def cost_usd(identity: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> float | None:
    """Estimated $ of one call: table price for API models, 0 for local ones, else None."""
    if identity.get("backend") in {"local", "none"}:
        return 0.0
    prices = price_per_1m_tokens(str(identity.get("model", "")))
    if prices is None:
        return None
    price_in, price_out = prices
    return round((prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, 8)


def request_key(identity: dict[str, Any], system: str, user: str) -> str:
    return content_key({"backend": identity, "system": system, "user": user})


@dataclass(frozen=True)
class CachedCompletion:
    """A completion and where it came from."""

    completion: Completion
    key: str
    hit: bool


class CallCache:
    """The call cache in ``root``; ``offline=True`` replays and never calls a backend."""

    def __init__(self, root: Path, offline: bool = False) -> None:
        self.root = Path(root)
        self.offline = offline

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.entry_path(key)
        if not path.is_file():
            return None
        entry = read_json(path)
        _check_entry(path, entry, key)
        return entry

    def complete(self, backend: Translator, system: str, user: str, clip: str) -> CachedCompletion:
        """Answer from the cache, or call the backend once and store the answer."""
        identity = backend.identity()
        key = request_key(identity, system, user)
        entry = self.get(key)
        if entry is not None:
            response = entry["response"]
            completion = Completion(
                text=response["text"],
                prompt_tokens=int(response["prompt_tokens"]),
                completion_tokens=int(response["completion_tokens"]),
                latency_s=float(entry["latency_s"]),
            )
            return CachedCompletion(completion, key, hit=True)
        if self.offline:
            raise CacheMiss(key, clip, self.root)
        completion = backend.complete(system, user)
        atomic_write_json(
            self.entry_path(key),
            {
                "format": CACHE_FORMAT,
                "key": key,
                "request": {"backend": identity, "system": system, "user": user},
                "response": {
                    "text": completion.text,
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                },
                "latency_s": round(completion.latency_s, 6),
                "cost_usd": cost_usd(
                    identity, completion.prompt_tokens, completion.completion_tokens
                ),
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        )
        return CachedCompletion(completion, key, hit=False)


def _check_entry(path: Path, entry: Any, key: str | None = None) -> None:
    if not isinstance(entry, dict):
        raise ArtifactError(path, "cache entry is not a JSON object")
    for field in ("key", "request", "response", "latency_s"):
        if field not in entry:
            raise ArtifactError(path, f"cache entry lacks {field!r}")
    if key is not None and entry["key"] != key:
        raise ArtifactError(path, f"cache entry holds key {entry['key']}, expected {key}")
    response = entry["response"]
    if not isinstance(response, dict) or not isinstance(response.get("text"), str):
        raise ArtifactError(path, "cache entry response has no text")


def _empty_totals() -> dict[str, Any]:
    return {
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_s": 0.0,
        "cost_usd": 0.0,
        "calls_without_price": 0,
    }


def _add(totals: dict[str, Any], entry: dict[str, Any]) -> None:
    totals["calls"] += 1
    totals["prompt_tokens"] += int(entry["response"].get("prompt_tokens", 0))
    totals["completion_tokens"] += int(entry["response"].get("completion_tokens", 0))
    totals["latency_s"] = round(totals["latency_s"] + float(entry["latency_s"]), 6)
    if entry.get("cost_usd") is None:
        totals["calls_without_price"] += 1
    else:
        totals["cost_usd"] = round(totals["cost_usd"] + float(entry["cost_usd"]), 8)


def cache_stats(cache_dir: Path, translation_dirs: Iterable[Path] = ()) -> dict[str, Any]:
    """Calls, tokens and estimated $ in the cache, in total and per backend/model.

    Every entry is one call that was really made. ``translation_dirs`` (outputs of
    :func:`avsbridge.translate.run.translate_shard`) add per-run use: requests,
    cache hits and backend calls, read from their ``_summary.json``.
    """
    cache_dir = Path(cache_dir)
    totals = _empty_totals()
    by_backend: dict[str, dict[str, Any]] = {}
    if cache_dir.is_dir():
        for path in sorted(cache_dir.glob("*/*.json")):
            entry = read_json(path)
            _check_entry(path, entry, key=path.stem)
            identity = entry["request"].get("backend", {})
            label = f"{identity.get('backend', '?')}/{identity.get('model', '-')}"
            _add(totals, entry)
            _add(by_backend.setdefault(label, _empty_totals()), entry)
    stats: dict[str, Any] = {"cache_dir": str(cache_dir), **totals, "by_backend": by_backend}
    runs: dict[str, dict[str, int]] = {}
    for folder in translation_dirs:
        summary_path = Path(folder) / "_summary.json"
        summary = read_json(summary_path)
        try:
            runs[str(folder)] = {
                name: int(summary[name]) for name in ("llm_requests", "llm_calls", "cache_hits")
            }
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(summary_path, "not a translation summary") from None
    if runs:
        stats["runs"] = runs
    return stats
