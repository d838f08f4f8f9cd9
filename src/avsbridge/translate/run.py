"""Stage runner: translate a shard of clips' ALM texts into VFM prompts.

Snakemake rules call :func:`translate_shard` (and :func:`weak_label_shard` for
OpenAVS*). Every LLM call goes through the content-addressed cache, so a re-run
makes zero backend calls. The per-clip records hold only facts that do not depend
on the cache's state: requests the strategy needs (Table 4's cost column), the
cache keys used, tokens (from the cache entry), failed calls and fallback frames.
So a cold and a warm run write byte-identical records; whether a request was a hit
or a call, and its latency, go to the job's log (see :func:`usage_stats` for the
derived per-report hits). The output folder is built aside and swapped in whole,
so a failed or killed job leaves nothing that a later run would trust.

Failure policy (``failure_policy``): with ``"fail"`` (the default) a request that
keeps failing makes the job fail AFTER the shard's other requests were tried and
their answers cached, so re-running once the service is back calls only the
failed requests; an unreachable endpoint (:class:`EndpointDown`) stops the shard at
once. ``"fallback"`` keeps the job going: the failed frames get the raw ALM text,
counted in ``failed_calls``/``fallback_frames`` (results then carry the outage until
the shard is re-run with ``--forcerun``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_dir, atomic_write_json, read_json
from avsbridge.progress import Progress
from avsbridge.translate import TRANSLATORS
from avsbridge.translate.backends import CallFailed, EndpointDown, Translator, TranslatorError
from avsbridge.translate.cache import CallCache, request_key
from avsbridge.translate.categories import labels_to_prompt
from avsbridge.translate.prompts import citation, get_strategy
from avsbridge.translate.strategies import build_requests, parse_answers, reply_problem

log = logging.getLogger("avsbridge.translate")

SUMMARY_FILE = "_summary.json"
FAILURE_POLICIES = ("fail", "fallback")
_COUNTERS = (
    "alm_calls",
    "llm_requests",
    "failed_calls",
    "prompt_tokens",
    "completion_tokens",
)


def _read_alm_texts(
    alm_dirs: dict[str, Path], slug: str, n_frames: int | None
) -> tuple[str, dict[str, list[str]], int]:
    """(clip id, texts per ALM prompt key, ALM calls) of one clip, validated."""
    clip_id: str | None = None
    texts_by_key: dict[str, list[str]] = {}
    alm_calls = 0
    for prompt_key, folder in alm_dirs.items():
        path = Path(folder) / f"{slug}.json"
        doc = read_json(path)
        if not isinstance(doc, dict):
            raise ArtifactError(path, "ALM record is not a JSON object")
        texts = doc.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ArtifactError(path, "'texts' must be a list of strings (one per frame)")
        if not texts:
            raise ArtifactError(path, "'texts' is empty: a clip has at least one frame")
        this_clip = doc.get("clip")
        if not isinstance(this_clip, str) or not this_clip:
            raise ArtifactError(path, "'clip' id is missing")
        if clip_id is not None and this_clip != clip_id:
            raise ArtifactError(
                path, f"clip {this_clip!r} differs from {clip_id!r} of other prompts"
            )
        clip_id = this_clip
        if n_frames is not None:
            if len(texts) < n_frames:
                raise ArtifactError(path, f"{len(texts)} frame texts, {n_frames} expected")
            texts = texts[:n_frames]
            used_calls = n_frames
        else:
            calls = doc.get("alm_calls", len(texts))
            if not isinstance(calls, int) or calls < 0:
                raise ArtifactError(path, "'alm_calls' must be a non-negative integer")
            used_calls = calls
        texts_by_key[prompt_key] = list(texts)
        alm_calls += used_calls
    lengths = {len(t) for t in texts_by_key.values()}
    if len(lengths) != 1:
        where = ", ".join(f"{k}: {len(t)}" for k, t in texts_by_key.items())
        raise ArtifactError(
            Path(next(iter(alm_dirs.values()))) / f"{slug}.json",
            f"ALM prompts disagree on the number of frames ({where})",
        )
    assert clip_id is not None
    return clip_id, texts_by_key, alm_calls


def raw_prompt(frame_texts: Sequence[str]) -> str:
    """The "w/o LLM" prompt of one frame: its ALM text(s), distinct ones joined by ". "."""
    distinct: list[str] = []
    for text in frame_texts:
        text = text.strip()
        if text and text not in distinct:
            distinct.append(text)
    return ". ".join(distinct)


def _fall_back(
    record: dict[str, Any],
    prompts: list[str | None],
    raw: list[str],
    frames: Sequence[int],
    why: str,
) -> None:
    """Frames whose LLM answer is unusable get their raw ALM text, and say so."""
    for frame in frames:
        prompts[frame] = raw[frame]
        record["fallback_frames"].append(frame)
        record["fallback_reasons"].append(f"frame {frame}: {why}; used the raw ALM text")


def _translate_clip(
    clip_id: str,
    texts_by_key: dict[str, list[str]],
    alm_calls: int,
    strategy: str,
    translator: Translator,
    identity: dict[str, Any],
    cache: CallCache,
    ledger: dict[str, Any],
) -> dict[str, Any]:
    texts_by_prompt = list(texts_by_key.values())
    n_frames = len(texts_by_prompt[0])
    raw = [raw_prompt([texts[i] for texts in texts_by_prompt]) for i in range(n_frames)]
    record: dict[str, Any] = {
        "clip": clip_id,
        "strategy": strategy,
        "backend": identity,
        "raw_texts": texts_by_key,
        "alm_calls": alm_calls,
        **_zero_counters(),
    }
    if translator.passthrough:
        record["prompts"] = raw
        return record
    prompts: list[str | None] = [None] * n_frames
    for request in build_requests(strategy, texts_by_prompt):
        record["llm_requests"] += 1
        try:
            answer = cache.complete(translator, request.system, request.user, clip=clip_id)
        except CallFailed as exc:
            key = request_key(identity, request.system, request.user)
            log.warning("llm failed clip=%s key=%s: %s", clip_id, key, exc)
            ledger["failed"] += 1
            ledger["last_error"] = str(exc)
            record["failed_calls"] += 1
            record["failed_keys"].append(key)
            _fall_back(
                record,
                prompts,
                raw,
                request.frame_indices,
                f"LLM call failed after retries: {exc.kind} (cache key {key})",
            )
            continue
        ledger["hits" if answer.hit else "calls"] += 1
        log.info(
            "llm %s clip=%s key=%s latency=%.3fs",
            "hit" if answer.hit else "call",
            clip_id,
            answer.key,
            answer.completion.latency_s,
        )
        record["prompt_tokens"] += answer.completion.prompt_tokens
        record["completion_tokens"] += answer.completion.completion_tokens
        record["cache_keys"].append(answer.key)
        n_answers = len(request.frame_indices)
        parsed = parse_answers(answer.completion.text, n_answers)
        if parsed is None:
            problem = reply_problem(answer.completion.text, n_answers)
            _fall_back(
                record, prompts, raw, request.frame_indices, f"{problem} (cache key {answer.key})"
            )
        else:
            for frame, prompt in zip(request.frame_indices, parsed, strict=True):
                prompts[frame] = prompt
    record["prompts"] = prompts
    return record


def _write_shard(
    out_dir: Path, records: dict[str, dict[str, Any]], summary: dict[str, Any]
) -> None:
    with atomic_dir(out_dir) as tmp:
        for slug, record in records.items():
            atomic_write_json(tmp / f"{slug}.json", record)
        atomic_write_json(tmp / SUMMARY_FILE, summary)


def _summary(records: dict[str, dict[str, Any]], **header: Any) -> dict[str, Any]:
    summary: dict[str, Any] = dict(header)
    summary["clips"] = len(records)
    summary["frames"] = sum(len(r["prompts"]) for r in records.values())
    for name in _COUNTERS:
        summary[name] = sum(int(r[name]) for r in records.values())
    summary["llm_distinct_requests"] = len(
        {key for r in records.values() for key in r["cache_keys"]}
    )
    summary["fallback_frames"] = sum(len(r["fallback_frames"]) for r in records.values())
    summary["fallback_clips"] = {
        slug: r["fallback_frames"] for slug, r in records.items() if r["fallback_frames"]
    }
    return summary


def _zero_counters() -> dict[str, Any]:
    """Per-clip call counters, before any LLM request (weak labels stay at zero).

    ``llm_requests`` = ``len(cache_keys) + len(failed_keys)``: answered requests name
    their cache entry, failed ones (never cached) the key a re-run would fill.
    """
    return {
        "llm_requests": 0,
        "failed_calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "fallback_frames": [],
        "fallback_reasons": [],
        "cache_keys": [],
        "failed_keys": [],
    }


def translate_shard(
    alm_dirs: dict[str, Path],
    clip_ids: list[str],
    backend: str,
    backend_options: dict[str, Any],
    strategy: str,
    cache_dir: Path,
    out_dir: Path,
    offline: bool = False,
    n_frames: int | None = None,
    failure_policy: str | None = None,
) -> None:
    """Translate every clip of a shard and write ``out_dir/{slug}.json`` + ``_summary.json``.

    ``alm_dirs`` maps ALM prompt key -> folder of ALM records; pc/pcfc use all of
    them as exp1..expK in the given order, none/fc exactly one. ``n_frames`` keeps
    the first n frames of each clip. A call that keeps failing with a transient
    fault (:class:`CallFailed`) is recorded: its frames fall back to the raw ALM
    text, counted in ``failed_calls``/``fallback_frames``, under
    ``failure_policy="fallback"``; under ``"fail"`` (the default; also read from
    ``backend_options["failure_policy"]``) the job fails once the other
    requests are answered and cached (see the module docstring). The job also fails,
    leaving ``out_dir`` untouched, on a refused request (:class:`TranslatorError`),
    an unreachable endpoint, an offline cache miss, or when every request of the
    shard failed (the service is down: nothing worth keeping).
    """
    backend_options = dict(backend_options)
    # Also settable as a backend option (config backends.llm.options.failure_policy).
    option = backend_options.pop("failure_policy", None)
    failure_policy = failure_policy or option or "fail"
    if failure_policy not in FAILURE_POLICIES:
        raise ValueError(
            f"failure_policy must be one of {', '.join(FAILURE_POLICIES)}, got {failure_policy!r}"
        )
    spec = get_strategy(strategy)
    if not alm_dirs:
        raise ValueError("translate_shard: no ALM prompt folders given")
    if not spec.prompt_consistency and len(alm_dirs) != 1:
        raise ValueError(
            f"strategy {strategy!r} ({spec.section}) uses exactly one ALM prompt, "
            f"got {len(alm_dirs)}: {', '.join(alm_dirs)}"
        )
    translator = TRANSLATORS.create(backend, **backend_options)
    identity = translator.identity()
    cache = CallCache(Path(cache_dir), offline=offline)
    records: dict[str, dict[str, Any]] = {}
    ledger: dict[str, Any] = {"hits": 0, "calls": 0, "failed": 0, "last_error": ""}
    progress = Progress(
        f"translate {backend}/{strategy} {Path(out_dir).name}", len(clip_ids), logger=log
    )
    for slug in clip_ids:
        clip_id, texts_by_key, alm_calls = _read_alm_texts(alm_dirs, slug, n_frames)
        try:
            records[slug] = _translate_clip(
                clip_id, texts_by_key, alm_calls, strategy, translator, identity, cache, ledger
            )
        except EndpointDown as exc:
            raise EndpointDown(
                f"{exc} -- shard stopped at clip {clip_id!r}; the {ledger['calls']} answers "
                "received are cached, a re-run calls only the rest"
            ) from None
        progress.update()
    log.info(
        "llm shard %s: %d requests, %d cache hits, %d backend calls, %d failed",
        out_dir,
        ledger["hits"] + ledger["calls"] + ledger["failed"],
        ledger["hits"],
        ledger["calls"],
        ledger["failed"],
    )
    if ledger["failed"] and not ledger["hits"] + ledger["calls"]:
        raise TranslatorError(
            f"all {ledger['failed']} LLM requests of the shard failed; last: {ledger['last_error']}"
        )
    if ledger["failed"] and failure_policy == "fail":
        total = ledger["hits"] + ledger["calls"] + ledger["failed"]
        raise TranslatorError(
            f"{ledger['failed']} of {total} LLM requests of the shard failed after retries "
            f"(failure_policy=fail); the {ledger['hits'] + ledger['calls']} answered ones are "
            "cached, so a re-run once the service is back calls only the failed ones; "
            f"last error: {ledger['last_error']}"
        )
    summary = _summary(
        records,
        strategy=strategy,
        strategy_prompt=spec.section,
        prompt_citation=citation(),
        backend=identity,
        alm_prompts=list(alm_dirs),
    )
    _write_shard(Path(out_dir), records, summary)


def weak_label_shard(clips: list[Clip], out_dir: Path) -> None:
    """OpenAVS* (Table 5): every frame's prompt is the clip's weak label(s) as nouns."""
    records: dict[str, dict[str, Any]] = {}
    for clip in clips:
        labels = list(clip.labels) or ([clip.category] if clip.category else [])
        prompt = labels_to_prompt(labels)
        if not prompt:
            raise ValueError(f"clip {clip.id!r} has no weak label (labels and category empty)")
        records[clip.slug] = {
            "clip": clip.id,
            "strategy": "weak-label",
            "backend": {"backend": "weak-label"},
            "prompts": [prompt] * clip.n_frames,
            "raw_texts": {"weak_label": [", ".join(labels)] * clip.n_frames},
            "alm_calls": 0,
            **_zero_counters(),
        }
    summary = _summary(records, strategy="weak-label", backend={"backend": "weak-label"})
    _write_shard(Path(out_dir), records, summary)
