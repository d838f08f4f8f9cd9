"""Glue between Snakemake rules and the stage packages.

Rules stay thin: each ``workflow/scripts/*.py`` calls one function here with
the job's paths and params. This module knows the artifact layout (shards,
folders); the stage packages know the models.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.io import atomic_write_json, read_image, read_json
from avsbridge.paths import split_dataset_key
from avsbridge.provenance.records import write_record
from avsbridge.stages import SUMMARY_NAME, JobContext, backend_spec

log = logging.getLogger("avsbridge.pipeline")

SHARD_PREFIX = "s"


@functools.cache
def _load(kind: str, root: str, split: str) -> tuple[Clip, ...]:
    from avsbridge.data.avsbench import load_benchmark

    return tuple(load_benchmark(kind, Path(root), split=split))


@functools.cache
def _weak_labels(path: str) -> dict[str, tuple[str, ...]]:
    from avsbridge.data.avsbench import read_weak_labels

    return read_weak_labels(Path(path))


def dataset_clips(config: dict[str, Any], dataset: str) -> list[Clip]:
    """Clips of a configured dataset, in metadata order (the official test order).

    ``weak_labels`` (a ``name,labels`` CSV) sets the clip-level labels of OpenAVS*
    where the benchmark metadata has none (MS3).
    """
    spec = config["datasets"][split_dataset_key(dataset)[0]]
    clips = list(_load(spec["kind"], str(spec["root"]), spec["split"]))
    if spec.get("weak_labels"):
        labels = _weak_labels(str(spec["weak_labels"]))
        clips = [dataclasses.replace(c, labels=labels.get(c.id, c.labels)) for c in clips]
    if spec.get("limit"):
        clips = clips[: spec["limit"]]
    return clips


METADATA_FILES = {
    "s4": "Single-source/s4_meta_data.csv",
    "ms3": "Multi-sources/ms3_meta_data.csv",
    "avss": "metadata.csv",
}


def metadata_file(config: dict[str, Any], dataset: str) -> str:
    """The split list a dataset's clips come from (the DAG's dependency on the benchmark)."""
    spec = config["datasets"][split_dataset_key(dataset)[0]]
    if _zeroshot(spec):
        from avsbridge.zeroshot.samples import list_file

        return list_file(config, dataset)
    root = Path(spec["root"])
    if spec["kind"] == "v3":
        from avsbridge.data.avsbench import find_v3_split_file

        return str(find_v3_split_file(root, spec["split"]))
    return str(root / METADATA_FILES[spec["kind"]])


def _zeroshot(spec: dict[str, Any]) -> bool:
    from avsbridge.zeroshot.samples import KINDS

    return spec["kind"] in KINDS


def shard_names(config: dict[str, Any], dataset: str) -> list[str]:
    """Shards of a dataset's clips (zero-shot datasets: of its samples)."""
    base = split_dataset_key(dataset)[0]
    if _zeroshot(config["datasets"][base]):
        from avsbridge.zeroshot import samples

        return samples.shard_names(config, base)
    size = config["datasets"][base]["shard_size"]
    n = len(dataset_clips(config, dataset))
    return [f"{SHARD_PREFIX}{i:04d}" for i in range((n + size - 1) // size)]


def shard_clips(config: dict[str, Any], dataset: str, shard: str) -> list[Clip]:
    size = config["datasets"][split_dataset_key(dataset)[0]]["shard_size"]
    index = int(shard.removeprefix(SHARD_PREFIX))
    return dataset_clips(config, dataset)[index * size : (index + 1) * size]


def _backend_extra(backend: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    """Provenance of a stage's backend: config name + options, its identity, and
    (pulled out of the identity) model ids and weight sha256s, for audit to show."""
    flat: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = obj

    walk(identity, "")
    models = {
        k: v
        for k, v in flat.items()
        if "model" in k.rsplit(".", 1)[-1] and "sha256" not in k and isinstance(v, str)
    }
    weights = {k: v for k, v in flat.items() if k.endswith("sha256") and isinstance(v, str)}
    return {
        "backend": {"name": backend["name"], "options": backend["options"]},
        "identity": identity,
        "model_ids": models,
        "weights_sha256": weights,
    }


def setup_logging(log_file: str | None) -> None:
    """Log to stderr and the job's log file; an uncaught exception's traceback lands there too.

    Snakemake leaves a script rule's ``log:`` file empty on failure (the traceback
    goes to Snakemake's own stderr, on SLURM to the scheduler's output file), so a
    user opening ``logs/...`` saw nothing. The hook writes the traceback through
    the same handlers, then lets Python print it as before. Warnings (short audio,
    ...) are logged too.
    """
    import sys

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.captureWarnings(True)
    if not log_file:
        return
    file_handler = handlers[-1]
    previous = getattr(sys.excepthook, "avsbridge_previous", sys.excepthook)

    def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if not issubclass(exc_type, KeyboardInterrupt):
            record = logging.LogRecord(
                "avsbridge.job",
                logging.ERROR,
                __file__,
                0,
                "job failed: %s: %s",
                (exc_type.__name__, exc),
                (exc_type, exc, tb),
            )
            file_handler.handle(record)  # stderr gets Python's own print below
            file_handler.flush()
        previous(exc_type, exc, tb)

    log_uncaught.avsbridge_previous = previous  # type: ignore[attr-defined]
    sys.excepthook = log_uncaught


def object_mask_reader(config: dict[str, Any], dataset: str) -> Any:
    """GT path -> binary float mask: grayscale > 127 (S4/MS3), or any object class of an
    AVSS/V3 palette label (OpenAVS Eq. 10: semantic labels binarised)."""
    spec = config["datasets"][split_dataset_key(dataset)[0]]
    if spec["kind"] in ("avss", "v3"):
        from avsbridge.data.avsbench import avss_binary_mask, avss_root_palette, read_avss_label

        palette = avss_root_palette(Path(spec["root"]))
        return lambda path: avss_binary_mask(read_avss_label(path, palette)).astype(np.float32)
    return lambda path: (read_image(path, mode="L") > 127).astype(np.float32)


# --- stage jobs -------------------------------------------------------------


def audio_text_job(ctx: JobContext) -> None:
    w, config, out_dir, params = ctx.wildcards, ctx.config, ctx.output, ctx.params
    dataset, alm, aprompt, shard = w["dataset"], w["alm"], w["aprompt"], w["shard"]
    from avsbridge.audio_text.run import describe_shard

    clips = shard_clips(config, dataset, shard)
    backend = backend_spec(config, "audio_text", dataset=split_dataset_key(dataset)[0])
    if backend["name"] != alm:
        raise ValueError(
            f"ALM {alm!r} requested but profile {config['profile']!r} uses {backend['name']!r}"
        )
    describe_shard(
        clips,
        backend["name"],
        backend["options"],
        aprompt,
        out_dir,
        perturbation=split_dataset_key(dataset)[1],
    )
    summary = read_json(out_dir / SUMMARY_NAME)  # what the backend said it is
    write_record(
        out_dir,
        rule="audio_text",
        params=params,
        inputs=[c.audio for c in clips if c.audio is not None],
        extra={
            **_backend_extra(backend, summary["backend"]),
            "prompt": {"key": aprompt, "text": summary["prompt"]},
        },
    )


def weak_labels_job(ctx: JobContext) -> None:
    """OpenAVS*: the clip-level labels as every frame's prompt (no ALM, no LLM)."""
    from avsbridge.translate.run import weak_label_shard

    clips = shard_clips(ctx.config, ctx.wildcards["dataset"], ctx.wildcards["shard"])
    cache_dir = ctx.params.get("cache_dir")
    if cache_dir:  # the call cache is a DVC output of the translate family: it always exists
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    weak_label_shard(clips, ctx.output)
    write_record(ctx.output, rule="weak_labels", params=ctx.params, inputs=[])


def translate_job(ctx: JobContext) -> None:
    w, config, out_dir, params = ctx.wildcards, ctx.config, ctx.output, ctx.params
    dataset, aprompts, llm = w["dataset"], w["aprompts"], w["llm"]
    strategy, shard, alm_dirs = w["strategy"], w["shard"], ctx.input["alm"]
    from avsbridge.translate.run import translate_shard

    clips = shard_clips(config, dataset, shard)
    # the call cache is a DVC output of the translate stage: it exists even when
    # no call was needed (the "none" backend)
    Path(params["cache_dir"]).mkdir(parents=True, exist_ok=True)
    prompt_keys = aprompts.split("+")
    backend = backend_spec(config, "translate", llm)
    if backend["name"] != llm:
        raise ValueError(
            f"LLM {llm!r} requested but profile {config['profile']!r} uses {backend['name']!r}"
        )
    translate_shard(
        alm_dirs=dict(zip(prompt_keys, map(Path, alm_dirs), strict=True)),
        clip_ids=[c.slug for c in clips],
        backend=backend["name"],
        backend_options=backend["options"],
        strategy=strategy,
        cache_dir=Path(params["cache_dir"]),
        out_dir=out_dir,
        offline=bool(params.get("offline", False)),
    )
    from avsbridge.translate.prompts import get_strategy

    keys = [
        k
        for f in sorted(out_dir.glob("*.json"))
        if not f.name.startswith("_")
        for k in read_json(f).get("cache_keys", [])
    ]
    identity = read_json(out_dir / SUMMARY_NAME).get("backend") or {"backend": backend["name"]}
    write_record(
        out_dir,
        rule="translate",
        params=params,
        inputs=list(map(Path, alm_dirs)),
        extra={
            **_backend_extra(backend, identity),
            "prompt": {
                "strategy": strategy,
                "system": get_strategy(strategy).system,
                "alm_prompts": prompt_keys,
            },
            "llm_cache": {"dir": str(params["cache_dir"]), "keys": list(dict.fromkeys(keys))},
        },
    )


def segment_job(ctx: JobContext) -> None:
    w, config, out_dir, params = ctx.wildcards, ctx.config, ctx.output, ctx.params
    dataset, vfm, threshold, shard = w["dataset"], w["vfm"], w["thr"], w["shard"]
    text_dir = ctx.input["text"][0]
    from avsbridge.segment.run import segment_shard
    from avsbridge.segment.vfm_cache import VfmCacheSettings

    clips = shard_clips(config, dataset, shard)
    backend = backend_spec(config, "segment", vfm, split_dataset_key(dataset)[0])
    segment_shard(
        clips,
        text_dir,
        backend["name"],
        backend["options"],
        float(threshold),
        float(config["vfm"]["text_threshold"]),
        out_dir,
        cache=VfmCacheSettings.from_config(config),
    )
    summary = read_json(out_dir / SUMMARY_NAME)
    # The frames are inputs too (the DAG depends only on the split list): hashing
    # them here lets audit walk from a mask back to the exact pixels it came from.
    frames = [Path(f) for c in clips for f in c.frames]
    write_record(
        out_dir,
        rule="segment",
        params=params,
        inputs=[text_dir, *frames],
        extra={
            **_backend_extra(backend, summary["identity"]),
            "thresholds": {"box": summary["box_threshold"], "text": summary["text_threshold"]},
            "vfm_cache": {
                "dir": str(VfmCacheSettings.from_config(config).root),
                "embedding_dtype": (config.get("vfm_cache") or {}).get("embedding_dtype", "same"),
            },
        },
    )


def evaluate_job(ctx: JobContext) -> None:
    """Score one variant over all its shards; counts ALM/LLM calls from the text artifacts."""
    from avsbridge.metrics.avsbench import score_avsbench
    from avsbridge.segment.run import boxes_name

    config, params, out_file = ctx.config, ctx.params, ctx.output
    dataset = ctx.wildcards["dataset"]
    mask_dirs, text_dirs = ctx.input["masks"], ctx.input["text"]

    boxes_suffix = boxes_name("")
    clips = dataset_clips(config, dataset)
    read_object_mask = object_mask_reader(config, dataset)
    by_slug: dict[str, Path] = {}
    for d in mask_dirs:
        for boxes in Path(d).glob(f"*{boxes_suffix}"):
            by_slug[boxes.name.removesuffix(boxes_suffix)] = Path(d)
    from avsbridge.metrics.evaluate import read_clip_frames

    n_frames_per_clip = max((c.n_frames for c in clips), default=5)
    preds, gts, names = read_clip_frames(clips, by_slug, read_gt=read_object_mask)
    batch_frames = int(config["evaluation"]["batch_size"]) * n_frames_per_clip
    official = score_avsbench(
        preds, gts, variant="official", batch_size=batch_frames, frame_names=names
    )
    pooled = score_avsbench(preds, gts, variant="pooled", frame_names=names)
    # Only cache-independent facts of the text records (a warm re-run gives the same
    # metrics): hits/calls/$ per report are derived by `avsbridge cache stats`.
    calls = {
        "alm_calls": 0,
        "llm_requests": 0,
        "failed_calls": 0,
        "fallback_frames": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }
    keys: set[str] = set()
    n_text = 0
    for d in text_dirs:
        for f in sorted(Path(d).glob("*.json")):
            if f.name.startswith("_"):
                continue
            rec = read_json(f)
            n_text += 1
            for key in calls:
                value = rec.get(key, 0)
                calls[key] += len(value) if isinstance(value, list) else int(value or 0)
            keys.update(rec.get("cache_keys", []))
    calls["llm_distinct_requests"] = len(keys)
    result = {
        "dataset": dataset,
        "n_clips": len(clips),
        "n_frames": len(preds),
        "miou": official.miou,
        "fscore": official.fscore,
        "fscore_variant": f"official (max over thresholds per batch of {config['evaluation']['batch_size']} clips = {batch_frames} frames)",
        "fscore_pooled": pooled.fscore,
        "alm_calls_per_instance": calls["alm_calls"] / max(n_text, 1),
        "llm_requests_per_instance": calls["llm_requests"] / max(n_text, 1),
        **{f"total_{k}": v for k, v in calls.items()},
        "params": params,
    }
    atomic_write_json(out_file, result)
    write_record(
        out_file,
        rule="evaluate",
        params=params,
        inputs=[*map(Path, mask_dirs), *map(Path, text_dirs)],
    )
