"""Stage 4 runner: one shard of clips, prompts per frame -> a mask PNG per frame and the
frames' boxes in one JSON per clip, side by side in the shard folder.

A Snakemake job calls :func:`segment_shard` once per shard: the backend (and its
models) is loaded once, every frame of every clip is segmented, and the whole
output folder appears atomically (``io.atomic_dir``), so a killed job leaves
nothing a later run could mistake for a finished shard.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
from avsbridge.provenance.records import LEDGER_NAME
from avsbridge.segment import SEGMENTERS
from avsbridge.segment.base import (
    Detection,
    Segmenter,
    SegResult,
    StagedSegmenter,
    empty_result,
)
from avsbridge.segment.vfm_cache import (
    VfmCaches,
    VfmCacheSettings,
    detection_key,
    embedding_key,
    encode_detection_entry,
    encode_embedding_entry,
    frame_sha256,
)

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


DEFAULT_BATCH_SIZE = 1  # frames per detector/encoder call: 1 = the per-frame path, bit for bit
RUNNER_OPTIONS = ("batch_size",)


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
    cache: VfmCacheSettings | None = None,
) -> None:
    """Segment every frame of ``clips`` into ``out_dir/{slug}.{k}.png`` + ``{slug}.boxes.json``.

    All prompt files are checked before the (slow) backend loads, so a missing or
    short prompt file fails in seconds. ``out_dir/_summary.json`` records the
    backend identity, thresholds and per-clip counts; the job's model invocations
    (``vfm_calls``: detector and encoder passes, cache hits/misses) go to its run ledger
    ``_calls.json``, which depends on what the shared caches held and is left out of
    every hash, so a re-run's artifacts stay byte-identical.

    A staged backend (:class:`~avsbridge.segment.base.StagedSegmenter`) runs frames in
    batches of the ``batch_size`` backend option through its detector and image
    encoder, consulting ``cache`` (detections before thresholds, image embeddings), so
    a threshold sweep or a second strategy with the same prompts runs neither again.
    The masks are the same with or without the cache.
    """
    box_threshold = _check_threshold("box_threshold", box_threshold)
    text_threshold = _check_threshold("text_threshold", text_threshold)
    options = dict(backend_options)
    batch_size = int(options.pop("batch_size", DEFAULT_BATCH_SIZE))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts_by_clip = {clip.id: read_prompts(Path(prompt_dir), clip) for clip in clips}
    slugs = [clip.slug for clip in clips]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"clips of one shard share a slug: {sorted(slugs)}")
    segmenter = load_segmenter(backend, options)
    staged = isinstance(segmenter, StagedSegmenter)
    engine = _StagedRun(segmenter, VfmCaches(cache), batch_size) if staged else None
    clip_summaries: dict[str, dict[str, Any]] = {}
    progress = Progress(f"segment {backend} {Path(out_dir).name}", len(clips), logger=log)
    segment_calls = 0
    # every frame of the shard, in order; a staged backend takes them ``batch_size`` at a
    # time across clip boundaries (a chunk's masks are written before the next is read)
    frames = [
        (clip, k, frame_path, prompt)
        for clip in clips
        for k, (frame_path, prompt) in enumerate(
            zip(clip.frames, prompts_by_clip[clip.id], strict=True), start=1
        )
    ]
    frame_boxes: dict[str, dict[str, dict[str, Any]]] = {clip.id: {} for clip in clips}
    counts = {clip.id: {"detections": 0, "empty_frames": 0} for clip in clips}
    remaining = {clip.id: clip.n_frames for clip in clips}
    with atomic_dir(out_dir) as tmp:
        for chunk in _batches(frames, batch_size if engine is not None else 1):
            images = [read_image(frame_path) for _, _, frame_path, _ in chunk]
            prompts = [prompt for _, _, _, prompt in chunk]
            if engine is not None:
                results = engine.segment_frames(images, prompts, box_threshold, text_threshold)
            else:
                results = [
                    segmenter.segment(image, prompt, box_threshold, text_threshold)
                    for image, prompt in zip(images, prompts, strict=True)
                ]
                segment_calls += len(images)
            for (clip, k, frame_path, prompt), image, result in zip(
                chunk, images, results, strict=True
            ):
                if result.mask.shape != image.shape[:2]:
                    raise ValueError(
                        f"{segmenter.name} returned a {result.mask.shape} mask for the "
                        f"{image.shape[:2]} frame {frame_path}"
                    )
                write_prob_png(tmp / mask_name(clip.slug, k), result.mask)
                frame_boxes[clip.id][str(k)] = {
                    "prompt": prompt,
                    "detections": [d.to_json() for d in result.detections],
                }
                counts[clip.id]["detections"] += len(result.detections)
                counts[clip.id]["empty_frames"] += int(not result.mask.any())
                remaining[clip.id] -= 1
                if remaining[clip.id] == 0:  # the clip's last frame: its boxes file and count
                    atomic_write_json(
                        tmp / boxes_name(clip.slug),
                        {
                            "box_threshold": box_threshold,
                            "text_threshold": text_threshold,
                            "frames": frame_boxes[clip.id],
                        },
                    )
                    clip_summaries[clip.id] = {
                        "slug": clip.slug,
                        "frames": clip.n_frames,
                        **counts[clip.id],
                    }
                    progress.update()
        for clip in clips:  # clips without frames still get their (empty) files
            if clip.id not in clip_summaries:
                atomic_write_json(
                    tmp / boxes_name(clip.slug),
                    {
                        "box_threshold": box_threshold,
                        "text_threshold": text_threshold,
                        "frames": {},
                    },
                )
                clip_summaries[clip.id] = {"slug": clip.slug, "frames": 0, **counts[clip.id]}
        if engine is not None:
            engine.caches.enforce_budget()
            calls = engine.summary()
        else:
            calls = {"staged": False, "segment_calls": segment_calls}
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
        atomic_write_json(tmp / LEDGER_NAME, {"vfm_calls": calls})


# helpers every staged backend computes its raw results with
STAGE_HELPERS = ("avsbridge.segment._boxes", "avsbridge.segment._torch_stages")


@functools.cache
def code_fingerprint(module: str) -> str:
    """sha256 (16 hex) of the source of ``module`` and the shared stage helpers."""
    from avsbridge.provenance.code import _module_files

    digest = hashlib.sha256()
    for name in (module, *STAGE_HELPERS):
        for path in _module_files(name):
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _adopt(
    found: tuple[bool, Any], targets: list[tuple[int, str]], raws: list[dict[str, Any]]
) -> bool:
    """Give every (frame, query) waiting on a key its raw value, if ``found``."""
    if found[0]:
        for j, q in targets:
            raws[j][q] = found[1]
    return found[0]


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _StagedRun:
    """Detector and encoder passes of one job, batched, through the caches, counted."""

    def __init__(self, segmenter: StagedSegmenter, caches: VfmCaches, batch_size: int) -> None:
        self.segmenter = segmenter
        self.caches = caches
        self.batch_size = batch_size
        # the code that computes an entry is part of its key: an edit to the detector's
        # or encoder's module never serves entries the old code computed
        self.detector_identity = {
            **segmenter.detector_identity(),
            "code": code_fingerprint(type(segmenter).detect_batch.__module__),
        }
        encoder = segmenter.encoder_identity()
        self.encoder_identity = (
            None
            if encoder is None
            else {**encoder, "code": code_fingerprint(type(segmenter).encode_batch.__module__)}
        )
        self.detector_calls = self.detector_batches = 0
        self.encoder_calls = self.encoder_batches = 0
        self.frames = 0

    def summary(self) -> dict[str, Any]:
        return {
            "staged": True,
            "frames": self.frames,
            "batch_size": self.batch_size,
            "detector_calls": self.detector_calls,
            "detector_batches": self.detector_batches,
            "encoder_calls": self.encoder_calls,
            "encoder_batches": self.encoder_batches,
            "cache": self.caches.counts() if self.caches.settings is not None else None,
            "storage_dtype": self.caches.storage_dtype,
        }

    def segment_frames(
        self,
        images: list[np.ndarray],
        prompts: list[str],
        box_threshold: float,
        text_threshold: float,
    ) -> list[SegResult]:
        seg = self.segmenter
        self.frames += len(images)
        hashes = [frame_sha256(image) for image in images]
        floor = seg.raw_floor(box_threshold)
        queries = [seg.detection_queries(prompt, text_threshold) for prompt in prompts]
        raws = self._detections(images, hashes, queries, floor)
        selected: list[list[Detection]] = [
            seg.select(image, prompt, raw, box_threshold, text_threshold) if qs else []
            for image, prompt, qs, raw in zip(images, prompts, queries, raws, strict=True)
        ]
        need = [i for i, dets in enumerate(selected) if dets]
        features = self._features(images, hashes, need)
        results = []
        for i, image in enumerate(images):
            if not selected[i]:
                results.append(empty_result(image))
                continue
            mask = seg.decode(image, features[i], selected[i])
            results.append(SegResult(mask=mask, detections=selected[i]))
        return results

    def _detections(
        self,
        images: list[np.ndarray],
        hashes: list[str],
        queries: list[list[str]],
        floor: float | None,
    ) -> list[dict[str, Any]]:
        """Raw candidates per frame and query: cache hits, else one batched detector pass."""
        ident = {**self.detector_identity, "floor": floor}
        # an entry of every candidate (floor 0) also answers any higher floor
        complete = {**self.detector_identity, "floor": 0.0} if floor else None
        raws: list[dict[str, Any]] = [{} for _ in images]
        todo: dict[str, tuple[int, str]] = {}  # key -> (frame, query) computed once per job
        waiting: dict[str, list[tuple[int, str]]] = {}
        for i, qs in enumerate(queries):
            for query in qs:
                key = detection_key(hashes[i], query, ident)
                if key in todo:
                    waiting[key].append((i, query))
                    continue
                if self.caches.detections_on:
                    hit, value = self.caches.detections.lookup(key)
                    if not hit and complete is not None:
                        hit, value = self.caches.detections.recheck(
                            detection_key(hashes[i], query, complete)
                        )
                    if hit:
                        raws[i][query] = value
                        continue
                todo[key] = (i, query)
                waiting[key] = [(i, query)]
        store, cached = self.caches.detections, self.caches.detections_on
        for batch in _batches(list(todo), self.batch_size):
            with store.claim(batch) if cached else contextlib.nullcontext():
                if cached:  # another job may have computed them while this one waited
                    batch = [k for k in batch if not _adopt(store.recheck(k), waiting[k], raws)]
                if not batch:
                    continue
                computed = self.segmenter.detect_batch(
                    [images[todo[k][0]] for k in batch], [todo[k][1] for k in batch], floor
                )
                self.detector_calls += len(batch)
                self.detector_batches += 1
                for key, raw in zip(batch, computed, strict=True):
                    i, query = todo[key]
                    request = {"frame": hashes[i], "query": query, "detector": ident}
                    data = encode_detection_entry(key, request, raw)
                    if cached:
                        raw = store.store(key, data)
                    else:  # the same JSON round trip as a cached value: identical either way
                        raw = json.loads(data)["raw"]
                    _adopt((True, raw), waiting[key], raws)
        return raws

    def _features(
        self, images: list[np.ndarray], hashes: list[str], need: list[int]
    ) -> dict[int, Any]:
        """Image features of the frames that have boxes: cache hits, else batched encoder passes."""
        seg = self.segmenter
        features: dict[int, Any] = {}
        if self.encoder_identity is None:
            return dict.fromkeys(need)
        storage = self.caches.storage_dtype
        todo: list[int] = []
        for i in need:
            key = embedding_key(hashes[i], self.encoder_identity, storage)
            if self.caches.embeddings_on:
                hit, value = self.caches.embeddings.lookup(key)
                if hit:
                    features[i] = seg.import_features(value)
                    continue
            todo.append(i)
        store, cached = self.caches.embeddings, self.caches.embeddings_on
        keys = {i: embedding_key(hashes[i], self.encoder_identity, storage) for i in todo}
        for batch in _batches(todo, self.batch_size):
            with store.claim(keys[i] for i in batch) if cached else contextlib.nullcontext():
                if cached:  # another job may have encoded them while this one waited
                    left = []
                    for i in batch:
                        found, value = store.recheck(keys[i])
                        if found:
                            features[i] = seg.import_features(value)
                        else:
                            left.append(i)
                    batch = left
                if not batch:
                    continue
                encoded = seg.encode_batch([images[i] for i in batch])
                self.encoder_calls += len(batch)
                self.encoder_batches += 1
                for i, feats in zip(batch, encoded, strict=True):
                    arrays = seg.export_features(feats, storage)
                    if cached:
                        request = {
                            "frame": hashes[i],
                            "encoder": self.encoder_identity,
                            "storage": storage,
                        }
                        arrays = store.store(
                            keys[i], encode_embedding_entry(keys[i], request, arrays)
                        )
                    features[i] = seg.import_features(arrays)
        return features
