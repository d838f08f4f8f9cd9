"""The rules' entries of text_cues and cue_recognition (REC#1 of TeSO Table 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, atomic_write_json, read_json


def text_cues_stage(ctx: Any) -> None:
    """Rule text_cues: cues of one shard's scene descriptions (every template)."""
    from avsbridge.cues.run import cue_shard
    from avsbridge.mllm.job import _cache_keys, _spec
    from avsbridge.pipeline import _backend_extra, shard_clips
    from avsbridge.provenance.records import write_record

    clips = shard_clips(ctx.config, ctx.wildcards["dataset"], ctx.wildcards["shard"])
    spec = _spec(ctx, "text_cues")
    (scene_dir,) = ctx.input["scenes"]
    cache_dir = Path(ctx.params["cache_dir"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    summary = cue_shard(
        clips,
        Path(scene_dir),
        spec["name"],
        spec["options"],
        ctx.params.get("text_cues"),
        cache_dir,
        ctx.output,
        offline=bool(ctx.params.get("offline", False)),
    )
    write_record(
        ctx.output,
        rule="text_cues",
        params=ctx.params,
        inputs=[Path(scene_dir)],
        extra={
            **_backend_extra(spec, summary["identity"] or {"backend": spec["name"]}),
            "prompt": {"templates": summary["templates"], "citation": summary["citation"]},
            "noun_parser": summary["noun_parser"],
            "llm_cache": {"dir": str(cache_dir), "keys": _cache_keys(ctx.output)},
        },
    )


def clip_labels(clip: Any) -> list[str]:
    """A clip's ground-truth categories: its labels (MS3 weak labels, AVSS), else its category."""
    return list(clip.labels) or ([clip.category] if clip.category else [])


def cue_recognition_stage(ctx: Any) -> None:
    """Rule cue_recognition: REC#1 (avsbridge.metrics.rec) of every template over all shards."""
    from avsbridge.metrics.rec import DEFINITION, PROTOCOL, FrameCues, gt_nouns_of, rec_scores
    from avsbridge.pipeline import dataset_clips
    from avsbridge.provenance.records import write_record

    dataset = ctx.wildcards["dataset"]
    clips = {c.slug: c for c in dataset_clips(ctx.config, dataset)}
    frames: dict[str, list[FrameCues]] = {}
    seen: set[str] = set()
    for folder in map(Path, ctx.input["cues"]):
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("_"):
                continue
            record = read_json(path)
            clip = clips.get(path.stem)
            if clip is None:
                raise ArtifactError(path, f"clip is not in dataset {dataset!r}")
            labels = clip_labels(clip)
            if not labels:
                raise ArtifactError(path, f"clip {clip.id!r} has no ground-truth category")
            gt = gt_nouns_of(labels)
            seen.add(path.stem)
            for template, entries in record["templates"].items():
                frames.setdefault(template, []).extend(
                    FrameCues(clip.id, int(e["frame"]), e["cues"], gt) for e in entries
                )
    missing = sorted(set(clips) - seen)
    if missing:
        raise ArtifactError(Path(ctx.input["cues"][0]), f"no cues for clips {missing[:5]}")
    result = {
        "dataset": dataset,
        "protocol": PROTOCOL,
        "definition": DEFINITION,
        "scene_description": ctx.wildcards["scene_description"],
        "text_cues": ctx.wildcards["text_cues"],
        # the cell's variant field `cues` (teso.yaml: cot | oneshot | noun) selects one entry
        "by_cues": {t: rec_scores(f) for t, f in frames.items()},
        "params": ctx.params,
    }
    atomic_write_json(ctx.output, result)
    write_record(
        ctx.output,
        rule="cue_recognition",
        params=ctx.params,
        inputs=list(map(Path, ctx.input["cues"])),
    )
