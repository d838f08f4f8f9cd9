"""Stage 4 runner: one shard of clips, prompts per frame -> a mask PNG per frame and the
frames' boxes in one JSON per clip, side by side in the shard folder.

A Snakemake job calls :func:`segment_shard` once per shard: the backend (and its
models) is loaded once, every frame of every clip is segmented, and the whole
output folder appears atomically (``io.atomic_dir``), so a killed job leaves
nothing a later run could mistake for a finished shard.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avsbridge.data.records import Clip
from avsbridge.io import (
    ArtifactError,
    atomic_dir,
    atomic_write_json,
    read_image,
    read_json,
    write_prob_png,
)
from avsbridge.progress import Progress
from avsbridge.segment import SEGMENTERS
from avsbridge.segment.base import Segmenter

log = logging.getLogger("avsbridge.segment")

# Backends whose module name does not follow from the config name; others are found
# by importing every module of the package (each registers itself on import).


# Flat shard layout: {slug}.{k}.png per frame and {slug}.boxes.json per clip
# ({"frames": {"1": {"prompt", "detections"}, ...}, thresholds}). Measured at paper
# scale (bench/dvc_scale.py): per-clip sub-folders and per-frame boxes files made
# `dvc status` 14-17 s; this layout (~80k files, no per-clip folders) takes ~8 s.
def mask_name(slug: str, frame: int) -> str:
    """File of the mask of 1-based ``frame`` of a clip, inside its shard folder."""
    return f"{slug}.{frame}.png"


def boxes_name(slug: str) -> str:
    return f"{slug}.boxes.json"


BACKEND_MODULES = {"demo-matcher": "avsbridge.segment.demo_detector"}
_NOT_BACKENDS = {"base", "run"}


def load_segmenter(backend: str, options: dict[str, Any] | None = None) -> Segmenter:
    """Create the configured backend, importing its module on first use."""
    if backend not in SEGMENTERS:
        module = BACKEND_MODULES.get(backend)
        if module is not None:
            importlib.import_module(module)
        else:
            import avsbridge.segment as package

            for info in pkgutil.iter_modules(package.__path__):
                if info.name not in _NOT_BACKENDS and not info.name.startswith("_"):
                    importlib.import_module(f"{package.__name__}.{info.name}")
    return SEGMENTERS.create(backend, **(options or {}))


def read_prompts(prompt_dir: Path, clip: Clip) -> list[str]:
    """The translation stage's per-frame prompts for ``clip``; errors name the file."""
    path = Path(prompt_dir) / f"{clip.slug}.json"
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("prompts"), list):
        raise ArtifactError(path, "expected an object with a 'prompts' list")
    if "clip" in record and record["clip"] != clip.id:
        raise ArtifactError(path, f"holds prompts of clip {record['clip']!r}, not {clip.id!r}")
    prompts = record["prompts"]
    if len(prompts) != clip.n_frames:
        raise ArtifactError(
            path, f"has {len(prompts)} prompts but clip {clip.id!r} has {clip.n_frames} frames"
        )
    if not all(isinstance(p, str) for p in prompts):
        raise ArtifactError(path, "every prompt must be a string ('' for silence)")
    return prompts


def _check_threshold(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def segment_shard(
    clips: Sequence[Clip],
    prompt_dir: Path,
    backend: str,
    backend_options: dict[str, Any],
    box_threshold: float,
    text_threshold: float,
    out_dir: Path,
) -> None:
    """Segment every frame of ``clips`` into ``out_dir/{slug}.{k}.png`` + ``{slug}.boxes.json``.

    All prompt files are checked before the (slow) backend loads, so a missing or
    short prompt file fails in seconds. ``out_dir/_summary.json`` records the
    backend identity, thresholds and per-clip counts.
    """
    box_threshold = _check_threshold("box_threshold", box_threshold)
    text_threshold = _check_threshold("text_threshold", text_threshold)
    prompts_by_clip = {clip.id: read_prompts(Path(prompt_dir), clip) for clip in clips}
    slugs = [clip.slug for clip in clips]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"clips of one shard share a slug: {sorted(slugs)}")
    segmenter = load_segmenter(backend, backend_options)
    clip_summaries: dict[str, dict[str, Any]] = {}
    progress = Progress(f"segment {backend} {Path(out_dir).name}", len(clips), logger=log)
    with atomic_dir(out_dir) as tmp:
        for clip in clips:
            detections = empty_frames = 0
            frame_boxes: dict[str, dict[str, Any]] = {}
            for k, (frame_path, prompt) in enumerate(
                zip(clip.frames, prompts_by_clip[clip.id], strict=True), start=1
            ):
                image = read_image(frame_path)
                result = segmenter.segment(image, prompt, box_threshold, text_threshold)
                if result.mask.shape != image.shape[:2]:
                    raise ValueError(
                        f"{segmenter.name} returned a {result.mask.shape} mask for the "
                        f"{image.shape[:2]} frame {frame_path}"
                    )
                write_prob_png(tmp / mask_name(clip.slug, k), result.mask)
                frame_boxes[str(k)] = {
                    "prompt": prompt,
                    "detections": [d.to_json() for d in result.detections],
                }
                detections += len(result.detections)
                empty_frames += int(not result.mask.any())
            atomic_write_json(
                tmp / boxes_name(clip.slug),
                {
                    "box_threshold": box_threshold,
                    "text_threshold": text_threshold,
                    "frames": frame_boxes,
                },
            )
            clip_summaries[clip.id] = {
                "slug": clip.slug,
                "frames": clip.n_frames,
                "detections": detections,
                "empty_frames": empty_frames,
            }
            progress.update()
        atomic_write_json(
            tmp / "_summary.json",
            {
                "backend": backend,
                "identity": segmenter.identity(),
                "box_threshold": box_threshold,
                "text_threshold": text_threshold,
                "clips": clip_summaries,
            },
        )
