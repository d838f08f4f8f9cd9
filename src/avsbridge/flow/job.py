"""The flow rule's entry: config + wildcards -> one shard folder with its provenance record.

``workflow/scripts/flow.py`` calls :func:`flow_job` once; the stage logic lives in
:mod:`avsbridge.flow.run`. The record lists the frames and the GT masks the job
actually read (training splits only), so audit walks an M_O / M_Pre back to pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge.flow.run import flow_shard


def flow_backend_spec(config: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """``config['backends']['flow']`` (one spec, or a mapping name -> spec) as name + options."""
    specs = config["backends"]["flow"]
    if "name" not in specs:  # several flow backends configured: pick the wildcard's one
        if name is None or name not in specs:
            raise KeyError(f"backends.flow has no entry {name!r} (known: {sorted(specs)})")
        specs = specs[name]
    return {"name": specs["name"], "options": dict(specs.get("options") or {})}


def flow_job(
    config: dict[str, Any],
    dataset: str,
    shard: str,
    out_dir: Path,
    params: dict[str, Any],
    flow_backend: str | None = None,
) -> None:
    """Rule ``flow``: the clips of ``shard`` -> ``out_dir`` (+ provenance record)."""
    from avsbridge.pipeline import _backend_extra, shard_clips
    from avsbridge.provenance.records import write_record

    clips = shard_clips(config, dataset, shard)
    backend = flow_backend_spec(config, flow_backend)
    summary = flow_shard(
        clips, backend["name"], backend["options"], params.get("flow"), Path(out_dir)
    )
    frames = [Path(f) for c in clips for f in c.frames]
    gt = [
        Path(c.masks[k - 1])  # type: ignore[arg-type]  # gt_frames are annotated frames
        for c in clips
        for k in summary["clips"][c.id]["gt_frames"]
    ]
    write_record(
        Path(out_dir),
        rule="flow",
        params=params,
        inputs=[*frames, *gt],
        extra={**_backend_extra(backend, summary["identity"]), "flow_params": summary["params"]},
    )


def flow_stage(ctx: Any) -> None:
    """The flow rule's job (avsbridge.stages): one shard of one dataset."""
    flow_job(ctx.config, ctx.wildcards["dataset"], ctx.wildcards["shard"], ctx.output, ctx.params)
