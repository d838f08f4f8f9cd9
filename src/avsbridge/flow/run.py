"""Flow stage runner: one shard of clips -> flow fields, previews and SSP masks per frame.

A Snakemake job calls :func:`flow_shard` once per shard: the backend (and its
model) loads once, the frame pairs of several clips go to it in batches, and the
whole folder appears atomically (``io.atomic_dir``), like the mask shards.

Flat layout (no per-clip folders; see segment/run.py for why), for a clip of T frames:

====================== ======================= ==========================================
file                   per                     content
====================== ======================= ==========================================
{slug}.{k}.flo         pair k (frame k -> k+1) Middlebury flow, k = 1..T-1
{slug}.{k}.flow.png    pair k                  flowiz colour preview (``previews``)
{slug}.{k}.gray.png    frame k                 O^T of Eq. 1, 8-bit (/ frame max, in summary)
{slug}.{k}.mo.png      frame k                 binary M_O (0 / 255)
{slug}.{k}.pre.png     annotated training fr.  M_Pre of Eq. 2 (0 / 128 / 255 = 0 / .5 / 1)
{slug}.{k}.post.png    annotated training fr.  post-mask target M_O n M_GT (0 / 255)
_summary.json          shard                   backend identity, params, per-clip stats
====================== ======================= ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.flow import load_flow_backend
from avsbridge.flow.artifacts import write_flo, write_flow_preview
from avsbridge.flow.masks import (
    BinarizeRule,
    GroundTruthOnTestSplitError,
    binarize,
    gray_u8,
    is_training_split,
    magnitude,
    post_mask,
    pre_mask,
    read_training_gt,
    stack_eq1,
)
from avsbridge.io import ArtifactError, atomic_dir, atomic_write_json, read_image, write_png

GT_MODES = ("auto", "require", "never")
PARAM_KEYS = {"binarize", "gt", "previews", "batch_pairs"}
DEFAULT_BATCH_PAIRS = 32


def flo_name(slug: str, pair: int) -> str:
    return f"{slug}.{pair}.flo"


def preview_name(slug: str, pair: int) -> str:
    return f"{slug}.{pair}.flow.png"


def frame_name(slug: str, frame: int, kind: str) -> str:
    """Per-frame mask file: ``kind`` in gray, mo, pre, post."""
    return f"{slug}.{frame}.{kind}.png"


def check_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The flow params (``params.yaml`` ``flow:``) with defaults; unknown keys are an error."""
    params = dict(params or {})
    unknown = set(params) - PARAM_KEYS
    if unknown:
        raise ValueError(
            f"flow params: unknown keys {sorted(unknown)} (known: {sorted(PARAM_KEYS)})"
        )
    gt = str(params.get("gt", "auto"))
    if gt not in GT_MODES:
        raise ValueError(f"flow.gt must be one of {', '.join(GT_MODES)}, got {gt!r}")
    return {
        "binarize": BinarizeRule.from_params(params.get("binarize")),
        "gt": gt,
        "previews": bool(params.get("previews", True)),
        "batch_pairs": max(1, int(params.get("batch_pairs", DEFAULT_BATCH_PAIRS))),
    }


def gt_frames(clip: Clip, gt_mode: str) -> list[int]:
    """1-based frames whose M_Pre / post-mask this job builds (reads GT for).

    ``auto``: annotated frames of training-split clips, nothing elsewhere (no GT read);
    ``require``: the same, but a clip not on a training split is an error;
    ``never``: none.
    """
    if gt_mode == "never":
        return []
    if not is_training_split(clip.split):
        if gt_mode == "require":
            raise GroundTruthOnTestSplitError(
                clip.frames[0],
                f"flow.gt=require but clip {clip.id!r} is on split {clip.split!r}: "
                "GT masks are read only on training splits",
            )
        return []
    return [k + 1 for k in clip.annotated]


def _check_inputs(clips: Sequence[Clip], gt_mode: str) -> dict[str, list[int]]:
    slugs = [clip.slug for clip in clips]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"clips of one shard share a slug: {sorted(slugs)}")
    wanted: dict[str, list[int]] = {}
    for clip in clips:
        if clip.n_frames < 2:
            raise ArtifactError(
                clip.frames[0] if clip.frames else Path(clip.id),
                f"clip {clip.id!r} has {clip.n_frames} frame(s); flow needs at least 2",
            )
        for frame in clip.frames:
            if not Path(frame).is_file():
                raise ArtifactError(frame, f"frame of clip {clip.id!r} is missing")
        wanted[clip.id] = gt_frames(clip, gt_mode)
        for k in wanted[clip.id]:
            mask = clip.masks[k - 1]
            if mask is None or not Path(mask).is_file():
                raise ArtifactError(mask or clip.frames[k - 1], f"GT mask of frame {k} is missing")
    return wanted


def _clip_batches(clips: Sequence[Clip], batch_pairs: int) -> Iterator[list[Clip]]:
    """Consecutive clips grouped so each group has about ``batch_pairs`` frame pairs."""
    group: list[Clip] = []
    pairs = 0
    for clip in clips:
        group.append(clip)
        pairs += clip.n_frames - 1
        if pairs >= batch_pairs:
            yield group
            group, pairs = [], 0
    if group:
        yield group


def _read_frames(clip: Clip) -> list[np.ndarray]:
    frames = [read_image(path) for path in clip.frames]
    for path, frame in zip(clip.frames, frames, strict=True):
        if frame.shape != frames[0].shape:
            raise ArtifactError(
                path, f"is {frame.shape[:2]}, frame 1 of clip {clip.id!r} is {frames[0].shape[:2]}"
            )
    return frames


def flow_shard(
    clips: Sequence[Clip],
    backend: str,
    options: dict[str, Any] | None,
    params: dict[str, Any] | None,
    out_dir: Path,
) -> dict[str, Any]:
    """Flow + SSP masks of every clip of a shard into ``out_dir`` (layout: module docstring).

    Params and inputs (frames, and GT masks where this job reads them) are checked
    before the backend loads. Returns the summary written to ``_summary.json``.
    """
    settings = check_params(params)
    rule: BinarizeRule = settings["binarize"]
    wanted = _check_inputs(clips, settings["gt"])
    estimator = load_flow_backend(backend, options)
    clip_summaries: dict[str, dict[str, Any]] = {}
    with atomic_dir(out_dir) as tmp:
        for group in _clip_batches(clips, settings["batch_pairs"]):
            frames = {clip.id: _read_frames(clip) for clip in group}
            pairs = [
                (f[t], f[t + 1])
                for clip in group
                for f in [frames[clip.id]]
                for t in range(len(f) - 1)
            ]
            fields = estimator.flow(pairs)
            if len(fields) != len(pairs):
                raise RuntimeError(
                    f"{estimator.name} returned {len(fields)} flows for {len(pairs)} pairs"
                )
            offset = 0
            for clip in group:
                n_pairs = clip.n_frames - 1
                clip_fields = fields[offset : offset + n_pairs]
                offset += n_pairs
                clip_summaries[clip.id] = _write_clip(
                    tmp, clip, frames[clip.id], clip_fields, rule, settings, wanted[clip.id]
                )
        summary = {
            "backend": backend,
            "identity": estimator.identity(),
            "params": {**settings, "binarize": rule.to_json()},
            "definitions": {
                "gray": "per-pixel flow magnitude |(u,v)| in px; gray.png = round(255*o/max_px)",
                "eq1": "frame 1 = pair 1, frame t = mean(pair t-1, pair t), frame T = pair T-1",
                "pre": "Eq. 2: 1 on M_O&M_GT, 0.5 on M_O^M_GT, 0 elsewhere; png = round(255*v)",
                "post": "Fig. 4: M_O & M_GT",
            },
            "clips": clip_summaries,
        }
        atomic_write_json(tmp / "_summary.json", summary)
    return summary


def _write_clip(
    tmp: Path,
    clip: Clip,
    frames: list[np.ndarray],
    fields: list[np.ndarray],
    rule: BinarizeRule,
    settings: dict[str, Any],
    gt_wanted: list[int],
) -> dict[str, Any]:
    height, width = frames[0].shape[:2]
    for k, field in enumerate(fields, start=1):
        if field.shape != (height, width, 2):
            raise RuntimeError(
                f"flow of pair {k} of {clip.id!r} is {field.shape}, frames are {(height, width)}"
            )
        write_flo(tmp / flo_name(clip.slug, k), field)
        if settings["previews"]:
            write_flow_preview(tmp / preview_name(clip.slug, k), field)
    o_t = stack_eq1([magnitude(f) for f in fields])
    max_px: list[float] = []
    moving: list[float] = []
    gt_used: list[int] = []
    for k, o in enumerate(o_t, start=1):
        m_o = binarize(o, rule)
        write_png(tmp / frame_name(clip.slug, k, "gray"), gray_u8(o))
        write_png(tmp / frame_name(clip.slug, k, "mo"), m_o.astype(np.uint8) * 255)
        max_px.append(round(float(o.max()), 4))
        moving.append(round(float(m_o.mean()), 6))
        if k in gt_wanted:
            m_gt = read_training_gt(clip, k)
            if m_gt.shape != m_o.shape:
                raise ArtifactError(
                    clip.masks[k - 1] or clip.frames[k - 1],
                    f"GT mask is {m_gt.shape}, frame {k} of {clip.id!r} is {m_o.shape}",
                )
            pre = pre_mask(m_o, m_gt)
            write_png(tmp / frame_name(clip.slug, k, "pre"), np.round(pre * 255).astype(np.uint8))
            write_png(
                tmp / frame_name(clip.slug, k, "post"), post_mask(m_o, m_gt).astype(np.uint8) * 255
            )
            gt_used.append(k)
    return {
        "slug": clip.slug,
        "split": clip.split,
        "frames": clip.n_frames,
        "pairs": len(fields),
        "max_px": max_px,
        "moving_fraction": moving,
        "gt_frames": gt_used,
    }
