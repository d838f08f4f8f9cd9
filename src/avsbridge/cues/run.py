"""Runner of the text_cues stage: a shard of scene descriptions -> cue lists per frame.

Input: the scene_description shard folder (``{slug}.json`` with one description per
frame). Output ``{slug}.json``: per template (cot, oneshot, noun), per frame, the cue
nouns (``[]`` = the model said nothing sounds; ``null`` = no usable answer, with its
``problem``), the cache key of the LLM request; counters as in the answer stage.
A frame whose description failed gets no cues (said so), never an empty list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avsbridge.cues.nouns import nouns, parser_identity
from avsbridge.cues.templates import (
    NOUN_PARSER,
    check_templates,
    citation,
    cue_prompt,
    parse_cues,
    reply_problem,
)
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_dir, atomic_write_json, read_json
from avsbridge.mllm.calls import (
    COUNTER_FIELDS,
    Counters,
    Ledger,
    ask,
    check_failure_policy,
    finish_shard,
    malformed,
)
from avsbridge.translate.cache import CallCache

SUMMARY_FILE = "_summary.json"
PARAM_KEYS = {"templates"}
DEFAULT_TEMPLATES = ("cot", "oneshot", "noun")


def check_params(params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = set(params) - PARAM_KEYS
    if unknown:
        raise ValueError(f"text_cues params: unknown keys {sorted(unknown)}")
    return {"templates": check_templates(params.get("templates", list(DEFAULT_TEMPLATES)))}


def read_scene_record(scene_dir: Path, clip: Clip) -> dict[str, Any]:
    path = Path(scene_dir) / f"{clip.slug}.json"
    record = read_json(path)
    frames = record.get("frames") if isinstance(record, dict) else None
    if not isinstance(frames, list) or len(frames) != clip.n_frames:
        raise ArtifactError(path, f"scene record must list {clip.n_frames} frames")
    for f in frames:
        if not isinstance(f, dict) or not (
            f.get("description") is None or isinstance(f.get("description"), str)
        ):
            raise ArtifactError(path, "a frame entry has no 'description' string or null")
    return record


def cue_shard(
    clips: Sequence[Clip],
    scene_dir: Path,
    llm_name: str,
    llm_options: dict[str, Any] | None,
    params: dict[str, Any] | None,
    cache_dir: Path,
    out_dir: Path,
    offline: bool = False,
) -> dict[str, Any]:
    """Text cues of every frame of a shard, for every configured template."""
    from avsbridge.translate import TRANSLATORS

    settings = check_params(params)
    options = dict(llm_options or {})
    policy = check_failure_policy(options)
    scenes = {clip.slug: read_scene_record(scene_dir, clip) for clip in clips}
    # the noun parser loads first: a missing spaCy model fails before any LLM call
    noun_parser = parser_identity() if NOUN_PARSER in settings["templates"] else None
    uses_llm = any(t != NOUN_PARSER for t in settings["templates"])
    llm = TRANSLATORS.create(llm_name, **options) if uses_llm else None
    identity = llm.identity() if llm is not None else None
    cache = CallCache(Path(cache_dir), offline=offline)
    ledger = Ledger()
    records: dict[str, dict[str, Any]] = {}
    for clip in clips:
        counters = Counters()
        per_template: dict[str, list[dict[str, Any]]] = {}
        for template in settings["templates"]:
            frames = []
            for entry in scenes[clip.slug]["frames"]:
                description = entry.get("description")
                out: dict[str, Any] = {"frame": entry["frame"], "cues": None, "problem": ""}
                if description is None:
                    out["problem"] = "no scene description for this frame"
                elif template == NOUN_PARSER:
                    out["cues"] = nouns(description)
                else:
                    assert llm is not None
                    system, user = cue_prompt(template, description)
                    got = ask(cache, llm, system, user, clip.id, counters, ledger)
                    out["cache_key"] = got.key
                    if got.text is None:
                        out["problem"] = got.problem
                    else:
                        cues = parse_cues(got.text)
                        if cues is None:
                            bad = malformed(counters, ledger, got.key, reply_problem(got.text))
                            out["problem"] = bad.problem
                        else:
                            out["cues"] = cues
                frames.append(out)
            per_template[template] = frames
        records[clip.slug] = {
            "clip": clip.id,
            "scene_backend": scenes[clip.slug].get("backend"),
            "llm": identity,
            "templates": per_template,
            **counters.as_json(),
        }
    finish_shard(ledger, policy, f"text_cues {Path(out_dir).name}")
    summary = {
        "backend": llm_name,
        "identity": identity,
        "noun_parser": noun_parser,
        "templates": settings["templates"],
        "citation": citation(),
        "clips": len(records),
        **{n: sum(int(r[n]) for r in records.values()) for n in COUNTER_FIELDS},
        "frames_without_cues": {
            t: sum(1 for r in records.values() for f in r["templates"][t] if f["cues"] is None)
            for t in settings["templates"]
        },
    }
    with atomic_dir(Path(out_dir)) as tmp:
        for slug, record in records.items():
            atomic_write_json(tmp / f"{slug}.json", record)
        atomic_write_json(tmp / SUMMARY_FILE, summary)
    return summary
