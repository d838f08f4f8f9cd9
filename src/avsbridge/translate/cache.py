"""Content-addressed, auditable LLM call cache (a folder that DVC tracks).

Key = ``content_key({backend identity, system, user})``; entry file
``{key[:2]}/{key}.json`` holds the request (minus secrets: the identity never holds
one), the response text, tokens, latency, a cost estimate and the creation time.

Concurrency: an entry is written to a hidden temp file beside its place and then
hard-linked into place, which fails if the entry already exists. So the FIRST
writer of a key wins and every other writer (Snakemake jobs, processes) adopts
the stored answer: whoever asked, the answer used is the one the cache keeps,
and a warm re-run reproduces it byte for byte even for a non-deterministic API.
Readers only ever open ``*.json`` names, which appear complete or not at all.

The artifacts never say whether a request was a hit or a call (that depends on
the run, not on the content); usage per report is derived: every distinct key a
report used was called once, every other request was a hit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, content_key, read_json
from avsbridge.translate.backends import Completion, Translator
from avsbridge.translate.prompts import price_per_1m_tokens

CACHE_FORMAT = 1
TEMP_SUFFIX = ".tmp"


class CacheMiss(LookupError):
    """Offline replay asked for a call that is not in the cache."""

    def __init__(self, key: str, clip: str, cache_dir: Path) -> None:
        self.key = key
        self.clip = clip
        super().__init__(
            f"LLM cache miss in offline mode: key {key} for clip {clip!r} is not in {cache_dir} "
            "(run online once, or pull the cache with `dvc pull`)"
        )


FREE = "free"


def cost_usd(
    identity: dict[str, Any],
    prompt_tokens: int,
    completion_tokens: int,
    priced_as: str | None = None,
) -> float | None:
    """Estimated $ of one call: table price of ``priced_as``, 0 for local ones, else None.

    ``priced_as`` is what the backend knows the answering model to be (see
    ``OpenAITranslator.pricing``); without it the identity's model name is used.
    """
    if identity.get("backend") in {"local", "none"} or priced_as == FREE:
        return 0.0
    name = priced_as if priced_as is not None else str(identity.get("model", ""))
    prices = price_per_1m_tokens(name)
    if prices is None:
        return None
    price_in, price_out = prices
    return round((prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, 8)


def request_key(
    identity: dict[str, Any], system: str, user: str, attachments: Sequence[str] | None = None
) -> str:
    """The cache key of one request; ``attachments`` (sha256 of the images a vision model
    sees) join the key only when given, so text-only keys are unchanged."""
    request: dict[str, Any] = {"backend": identity, "system": system, "user": user}
    if attachments:
        request["attachments"] = list(attachments)
    return content_key(request)


def backend_label(identity: dict[str, Any]) -> str:
    """``backend/model`` of an identity, the unit of the per-backend totals."""
    return f"{identity.get('backend', '?')}/{identity.get('model', '-')}"


@dataclass(frozen=True)
class CachedCompletion:
    """A completion and where it came from (``hit`` is run-dependent: log it, never record it)."""

    completion: Completion
    key: str
    hit: bool


def _completion_of(entry: dict[str, Any]) -> Completion:
    response = entry["response"]
    return Completion(
        text=response["text"],
        prompt_tokens=int(response.get("prompt_tokens", 0)),
        completion_tokens=int(response.get("completion_tokens", 0)),
        latency_s=float(entry["latency_s"]),
        model=response.get("model"),
    )


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

    def complete(
        self,
        backend: Translator,
        system: str,
        user: str,
        clip: str,
        attachments: Sequence[str] | None = None,
        call: Callable[[], Completion] | None = None,
    ) -> CachedCompletion:
        """Answer from the cache, or call the backend once and store the answer.

        Backend errors propagate and nothing is stored: a failure is never cached.
        A multimodal request passes ``attachments`` (content hashes of its images, part
        of the key and of the stored request) and ``call`` (what sends it, with the
        images; default ``backend.complete(system, user)``).
        """
        identity = backend.identity()
        key = request_key(identity, system, user, attachments)
        entry = self.get(key)
        if entry is not None:
            return CachedCompletion(_completion_of(entry), key, hit=True)
        if self.offline:
            raise CacheMiss(key, clip, self.root)
        completion = call() if call is not None else backend.complete(system, user)
        tokens = (completion.prompt_tokens, completion.completion_tokens)
        pricing = getattr(backend, "pricing", None)
        if callable(pricing):  # the backend knows what answered (None: not a priced model)
            priced_as = pricing(completion)
            cost = None if priced_as is None else cost_usd(identity, *tokens, priced_as)
        else:
            cost = cost_usd(identity, *tokens)
        entry = {
            "format": CACHE_FORMAT,
            "key": key,
            "request": {
                "backend": identity,
                "system": system,
                "user": user,
                **({"attachments": list(attachments)} if attachments else {}),
            },
            "response": {
                "text": completion.text,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                **({"model": completion.model} if completion.model else {}),
            },
            "latency_s": round(completion.latency_s, 6),
            "cost_usd": cost,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        stored = self._store(key, entry)
        return CachedCompletion(_completion_of(stored), key, hit=False)

    def _store(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Publish ``entry`` unless the key exists; return the entry the cache holds."""
        path = self.entry_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                existing = self.get(key)
                assert existing is not None
                return existing
            except OSError as exc:  # a filesystem without hard links: last writer wins
                if exc.errno not in {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}:
                    raise
                os.replace(tmp, path)
            return entry
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


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
    if not isinstance(entry["request"], dict):
        raise ArtifactError(path, "cache entry request is not a JSON object")
    try:
        int(response.get("prompt_tokens", 0))
        int(response.get("completion_tokens", 0))
        float(entry["latency_s"])
        if entry.get("cost_usd") is not None:
            float(entry["cost_usd"])
    except (TypeError, ValueError):
        raise ArtifactError(path, "cache entry has non-numeric tokens, latency or cost") from None


def load_entries(cache_dir: Path) -> dict[str, dict[str, Any]]:
    """Every entry of the cache by key, validated (temp files of live writers skipped)."""
    cache_dir = Path(cache_dir)
    entries: dict[str, dict[str, Any]] = {}
    if not cache_dir.is_dir():
        return entries
    for path in sorted(cache_dir.glob("*/*.json")):
        if path.name.startswith("."):
            continue
        entry = read_json(path)
        _check_entry(path, entry, key=path.stem)
        entries[path.stem] = entry
    return entries


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


def translation_records(text_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The per-clip records of one translation folder (``_summary.json`` etc. skipped)."""
    text_dir = Path(text_dir)
    if not text_dir.is_dir():
        raise ArtifactError(text_dir, "translation folder is missing")
    for path in sorted(text_dir.glob("*.json")):
        if path.name.startswith("_"):
            continue
        record = read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("prompts"), list):
            raise ArtifactError(path, "not a translation record (no 'prompts' list)")
        yield path, record


def _str_list(path: Path, record: dict[str, Any], field: str) -> list[str]:
    value = record.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArtifactError(path, f"{field!r} must be a list of cache keys")
    return value


def usage_stats(entries: dict[str, dict[str, Any]], text_dirs: Iterable[Path]) -> dict[str, Any]:
    """LLM use of a set of translation folders (one report's, or one run's).

    ``requests`` = what the strategy asked for; every distinct answered key was
    called once (``calls``), every other answered request was a cache ``hit``;
    tokens, latency and $ are those of the distinct entries (what was really paid).
    ``entries_missing`` counts answered keys absent from the cache (not pulled?).
    """
    requests = failed = fallback_frames = clips = 0
    answered: list[str] = []
    for folder in text_dirs:
        for path, record in translation_records(Path(folder)):
            clips += 1
            keys = _str_list(path, record, "cache_keys")
            failed_keys = _str_list(path, record, "failed_keys")
            try:
                n_requests = int(record.get("llm_requests", 0))
            except (TypeError, ValueError):
                raise ArtifactError(path, "'llm_requests' must be an integer") from None
            if n_requests != len(keys) + len(failed_keys):
                raise ArtifactError(
                    path,
                    f"llm_requests={n_requests} but {len(keys)} cache keys + "
                    f"{len(failed_keys)} failed keys",
                )
            requests += n_requests
            failed += len(failed_keys)
            answered.extend(keys)
            fallback_frames += len(record.get("fallback_frames", []))
    distinct = list(dict.fromkeys(answered))
    totals = _empty_totals()
    by_backend: dict[str, dict[str, Any]] = {}
    missing = 0
    for key in distinct:
        entry = entries.get(key)
        if entry is None:
            missing += 1
            continue
        _add(totals, entry)
        _add(
            by_backend.setdefault(
                backend_label(entry["request"].get("backend", {})), _empty_totals()
            ),
            entry,
        )
    totals["calls"] = len(distinct)
    return {
        "clips": clips,
        "requests": requests,
        **totals,
        "hits": len(answered) - len(distinct),
        "failed_calls": failed,
        "fallback_frames": fallback_frames,
        "entries_missing": missing,
        "by_backend": by_backend,
    }


def cache_stats(cache_dir: Path, translation_dirs: Iterable[Path] = ()) -> dict[str, Any]:
    """Calls, tokens and estimated $ in the cache, in total and per backend/model.

    Every entry is one call that was really made. ``translation_dirs`` (outputs of
    :func:`avsbridge.translate.run.translate_shard`) add their use under ``runs``
    (see :func:`usage_stats`). Leftover temp files of killed writers are counted.
    """
    cache_dir = Path(cache_dir)
    entries = load_entries(cache_dir)
    totals = _empty_totals()
    by_backend: dict[str, dict[str, Any]] = {}
    for entry in entries.values():
        label = backend_label(entry["request"].get("backend", {}))
        _add(totals, entry)
        _add(by_backend.setdefault(label, _empty_totals()), entry)
    temp_files = sum(1 for _ in cache_dir.glob(f"*/.*{TEMP_SUFFIX}")) if cache_dir.is_dir() else 0
    stats: dict[str, Any] = {
        "cache_dir": str(cache_dir),
        **totals,
        "by_backend": by_backend,
        "temp_files": temp_files,
    }
    runs = {str(folder): usage_stats(entries, [Path(folder)]) for folder in translation_dirs}
    if runs:
        stats["runs"] = runs
    return stats
