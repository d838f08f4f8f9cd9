"""Runners of the two vision stages: one shard of clips -> one JSON per clip.

``mllm_answers`` (SSP Section 4.2, Fig. 7): per clip and per Q1 variant a-d, A1 =
the answer to Q1 about the clip's frames, A2 = the answer to Q2 asked in the same
conversation after A1 (a failed or malformed A1 leaves Q2 unasked, said so).
``scene_description`` (TeSO Section 3.2.1): per frame, the dense description.

Every call goes through the shared call cache (:mod:`avsbridge.mllm.calls`), keyed
by the backend identity, the conversation and the sha256 of each image shown, so a
re-run makes no model call and the backend never loads. Records hold only facts
that do not depend on the cache's state; the folder appears atomically.

=========================== ==================================================
``{slug}.json`` (answers)   clip, frames shown (+ sha256), per question a-d: q1,
                            a1, q2, a2, a2_nouns, cache keys, problems; counters
``{slug}.json`` (scenes)    clip, prompt, per frame: image, sha256,
                            description, cache key, problem; counters
``_summary.json``           backend identity, citation, totals
=========================== ==================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_dir, atomic_write_json, read_image, sha256_file
from avsbridge.mllm import load_answerer, load_describer
from avsbridge.mllm.base import Turn, VisionChat, pick_frames, turns_text
from avsbridge.mllm.calls import (
    COUNTER_FIELDS,
    Counters,
    Ledger,
    ask,
    check_failure_policy,
    finish_shard,
    malformed,
)
from avsbridge.mllm.prompts import (
    QUESTION_IDS,
    check_questions,
    q1,
    q2,
    scene_citation,
    scene_prompt,
    ssp_citation,
)
from avsbridge.translate.cache import CallCache
from avsbridge.translate.strategies import normalise_answer

SUMMARY_FILE = "_summary.json"
ANSWER_PARAM_KEYS = {"questions"}


def check_answer_params(params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = set(params) - ANSWER_PARAM_KEYS
    if unknown:
        raise ValueError(f"mllm_answers params: unknown keys {sorted(unknown)}")
    return {"questions": check_questions(params.get("questions", list(QUESTION_IDS)))}


def parse_nouns(answer: str) -> list[str]:
    """A2 as a noun list ("piano, microphone, man" -> 3 nouns); [] when it names none."""
    names = normalise_answer(answer)
    return [n for n in names.split(", ") if n] if names else []


def _check_frames(clips: Sequence[Clip]) -> None:
    for clip in clips:
        if clip.n_frames < 1:
            raise ArtifactError(Path(clip.id), f"clip {clip.id!r} has no frames")
        for frame in clip.frames:
            if not Path(frame).is_file():
                raise ArtifactError(frame, f"frame of clip {clip.id!r} is missing")


def _images(paths: Sequence[Path]) -> Callable[[], list[np.ndarray]]:
    """Frames read only when a call is really made (a warm cache reads no pixels)."""

    @functools.cache
    def read() -> list[np.ndarray]:
        return [read_image(p, mode="RGB") for p in paths]

    return read


def _vision_call(
    backend: VisionChat, images: Callable[[], list[np.ndarray]], turns: list[Turn]
) -> Callable[[], Any]:
    return lambda: backend.answer(images(), turns)


def _write(out_dir: Path, records: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    with atomic_dir(out_dir) as tmp:
        for slug, record in records.items():
            atomic_write_json(tmp / f"{slug}.json", record)
        atomic_write_json(tmp / SUMMARY_FILE, summary)


def _totals(records: dict[str, dict[str, Any]]) -> dict[str, int]:
    totals = {name: sum(int(r[name]) for r in records.values()) for name in COUNTER_FIELDS}
    totals["llm_distinct_requests"] = len({k for r in records.values() for k in r["cache_keys"]})
    return totals


def answer_clip(
    clip: Clip,
    backend: VisionChat,
    identity: dict[str, Any],
    questions: Sequence[str],
    cache: CallCache,
    ledger: Ledger,
) -> dict[str, Any]:
    """A1/A2 of every question variant for one clip (the record written as ``{slug}.json``)."""
    shown = pick_frames(clip.n_frames, backend.max_images)
    paths = [Path(clip.frames[i]) for i in shown]
    hashes = [sha256_file(p) for p in paths]
    images = _images(paths)
    counters = Counters()
    answers: dict[str, dict[str, Any]] = {}
    for question in questions:
        turns: list[Turn] = [("user", q1(question))]
        first = ask(
            cache, backend, "", turns_text(turns), clip.id, counters, ledger, hashes,
            _vision_call(backend, images, turns),
        )  # fmt: skip
        entry: dict[str, Any] = {
            "q1": q1(question),
            "a1": first.text,
            "a1_key": first.key,
            "q2": q2(),
            "a2": None,
            "a2_key": None,
            "a2_nouns": None,
            "problems": [],
        }
        if first.text is None:
            entry["problems"] += [f"A1: {first.problem}", "A2: not asked (no A1)"]
            answers[question] = entry
            continue
        turns2: list[Turn] = [*turns, ("assistant", first.text), ("user", q2())]
        second = ask(
            cache, backend, "", turns_text(turns2), clip.id, counters, ledger, hashes,
            _vision_call(backend, images, turns2),
        )  # fmt: skip
        entry["a2_key"] = second.key
        if second.text is not None:
            nouns = parse_nouns(second.text)
            entry["a2"] = second.text
            if nouns:
                entry["a2_nouns"] = nouns
            else:
                bad = malformed(counters, ledger, second.key, "A2 names no noun")
                entry["problems"].append(f"A2: {bad.problem}")
        else:
            entry["problems"].append(f"A2: {second.problem}")
        answers[question] = entry
    return {
        "clip": clip.id,
        "backend": identity,
        "frames": [i + 1 for i in shown],
        "images": [
            {"frame": i + 1, "path": str(p), "sha256": h}
            for i, p, h in zip(shown, paths, hashes, strict=True)
        ],
        "questions": answers,
        **counters.as_json(),
    }


def answer_shard(
    clips: Sequence[Clip],
    backend_name: str,
    options: dict[str, Any] | None,
    params: dict[str, Any] | None,
    cache_dir: Path,
    out_dir: Path,
    offline: bool = False,
) -> dict[str, Any]:
    """SSP answers of every clip of a shard into ``out_dir`` (layout: module docstring)."""
    settings = check_answer_params(params)
    options = dict(options or {})
    policy = check_failure_policy(options)
    _check_frames(clips)
    backend = load_answerer(backend_name, options)
    identity = backend.identity()
    cache = CallCache(Path(cache_dir), offline=offline)
    ledger = Ledger()
    records = {
        clip.slug: answer_clip(clip, backend, identity, settings["questions"], cache, ledger)
        for clip in clips
    }
    finish_shard(ledger, policy, f"mllm_answers {Path(out_dir).name}")
    summary = {
        "backend": backend_name,
        "identity": identity,
        "questions": {q: q1(q) for q in settings["questions"]},
        "q2": q2(),
        "citation": ssp_citation(),
        "clips": len(records),
        **_totals(records),
    }
    _write(Path(out_dir), records, summary)
    return summary


def describe_clip(
    clip: Clip, backend: VisionChat, identity: dict[str, Any], cache: CallCache, ledger: Ledger
) -> dict[str, Any]:
    """One dense description per frame of one clip."""
    counters = Counters()
    turns: list[Turn] = [("user", scene_prompt())]
    frames: list[dict[str, Any]] = []
    for k, frame in enumerate(clip.frames, start=1):
        digest = sha256_file(frame)
        got = ask(
            cache, backend, "", turns_text(turns), clip.id, counters, ledger, [digest],
            _vision_call(backend, _images([Path(frame)]), turns),
        )  # fmt: skip
        frames.append(
            {
                "frame": k,
                "image": str(frame),
                "sha256": digest,
                "description": got.text,
                "cache_key": got.key,
                "problem": got.problem,
            }
        )
    return {
        "clip": clip.id,
        "backend": identity,
        "prompt": scene_prompt(),
        "frames": frames,
        **counters.as_json(),
    }


def describe_shard(
    clips: Sequence[Clip],
    backend_name: str,
    options: dict[str, Any] | None,
    cache_dir: Path,
    out_dir: Path,
    offline: bool = False,
) -> dict[str, Any]:
    """TeSO dense descriptions of every frame of a shard into ``out_dir``."""
    options = dict(options or {})
    policy = check_failure_policy(options)
    _check_frames(clips)
    backend = load_describer(backend_name, options)
    identity = backend.identity()
    cache = CallCache(Path(cache_dir), offline=offline)
    ledger = Ledger()
    records = {clip.slug: describe_clip(clip, backend, identity, cache, ledger) for clip in clips}
    finish_shard(ledger, policy, f"scene_description {Path(out_dir).name}")
    summary = {
        "backend": backend_name,
        "identity": identity,
        "prompt": scene_prompt(),
        "citation": scene_citation(),
        "clips": len(records),
        "frames": sum(len(r["frames"]) for r in records.values()),
        "failed_frames": sum(
            1 for r in records.values() for f in r["frames"] if f["description"] is None
        ),
        **_totals(records),
    }
    _write(Path(out_dir), records, summary)
    return summary
