"""The rules' entries: config + wildcards -> one shard folder with its provenance record.

The record lists every frame the job showed the model (hashed), so audit walks an
answer or a description back to its pixels, and the LLM cache keys it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge.io import read_json


def _cache_keys(out_dir: Path) -> list[str]:
    keys: list[str] = []
    for f in sorted(out_dir.glob("*.json")):
        if not f.name.startswith("_"):
            keys += read_json(f).get("cache_keys", [])
    return list(dict.fromkeys(keys))


def _spec(ctx: Any, stage: str) -> dict[str, Any]:
    from avsbridge.paths import split_dataset_key
    from avsbridge.stages import backend_spec

    dataset = split_dataset_key(ctx.wildcards["dataset"])[0]
    spec = backend_spec(ctx.config, stage, dataset=dataset)
    wanted = ctx.wildcards[stage]
    if spec["name"] != wanted:
        raise ValueError(
            f"{stage} backend {wanted!r} requested but profile {ctx.config['profile']!r} "
            f"uses {spec['name']!r}"
        )
    return spec


def mllm_answers_stage(ctx: Any) -> None:
    """Rule mllm_answers: SSP A1/A2 (questions a-d) of one shard."""
    from avsbridge.mllm.run import answer_shard
    from avsbridge.pipeline import _backend_extra, shard_clips
    from avsbridge.provenance.records import write_record

    clips = shard_clips(ctx.config, ctx.wildcards["dataset"], ctx.wildcards["shard"])
    spec = _spec(ctx, "mllm_answers")
    cache_dir = Path(ctx.params["cache_dir"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    summary = answer_shard(
        clips,
        spec["name"],
        spec["options"],
        ctx.params.get("mllm_answers"),
        cache_dir,
        ctx.output,
        offline=bool(ctx.params.get("offline", False)),
    )
    shown = [
        Path(image["path"])
        for f in sorted(ctx.output.glob("*.json"))
        if not f.name.startswith("_")
        for image in read_json(f)["images"]
    ]
    write_record(
        ctx.output,
        rule="mllm_answers",
        params=ctx.params,
        inputs=shown,
        extra={
            **_backend_extra(spec, summary["identity"]),
            "prompt": {"questions": summary["questions"], "q2": summary["q2"]},
            "llm_cache": {"dir": str(cache_dir), "keys": _cache_keys(ctx.output)},
        },
    )


def scene_description_stage(ctx: Any) -> None:
    """Rule scene_description: TeSO dense descriptions of every frame of one shard."""
    from avsbridge.mllm.run import describe_shard
    from avsbridge.pipeline import _backend_extra, shard_clips
    from avsbridge.provenance.records import write_record

    clips = shard_clips(ctx.config, ctx.wildcards["dataset"], ctx.wildcards["shard"])
    spec = _spec(ctx, "scene_description")
    cache_dir = Path(ctx.params["cache_dir"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    summary = describe_shard(
        clips,
        spec["name"],
        spec["options"],
        cache_dir,
        ctx.output,
        offline=bool(ctx.params.get("offline", False)),
    )
    write_record(
        ctx.output,
        rule="scene_description",
        params=ctx.params,
        inputs=[Path(f) for c in clips for f in c.frames],
        extra={
            **_backend_extra(spec, summary["identity"]),
            "prompt": {"text": summary["prompt"], "citation": summary["citation"]},
            "llm_cache": {"dir": str(cache_dir), "keys": _cache_keys(ctx.output)},
        },
    )
