"""The OpenAVS-ST stage jobs: functions of a :class:`~avsbridge.stages.JobContext`.

* ``pseudo_labels_job`` -- the teacher's masks on a **train** split are the
  existing segment stage run on a dataset entry with ``split: train`` (same
  shards, cache and provenance as test masks). This job only certifies them:
  every clip of the train split has a mask for every frame, and it writes
  a manifest (clip -> shard, label statistics) that the train job depends on,
  so a missing shard fails here, in seconds, naming the clips.
* ``audio_features_job`` -- one shard of frozen per-window features.
* ``train_job`` -- one checkpoint folder per (student, teacher, dataset, seed).
* ``predict_job`` -- checkpoint x test shard -> masks in the segment layout.

Config the jobs read (params.yaml ``train`` section, passed as ``params["train"]``):
``device``, ``num_workers``, ``threads``, ``val_clips``, ``students.<name>`` (the
student's hyper-parameter / option overrides, with per-kind sub-keys) and
``audio_features.<backend>`` (feature backend options). The train split of a
dataset ``d`` is the dataset entry ``datasets.d.train_dataset`` (default ``d_train``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, atomic_write_json, read_prob_png
from avsbridge.pipeline import dataset_clips, object_mask_reader, shard_clips
from avsbridge.provenance.records import write_record
from avsbridge.stages import JobContext
from avsbridge.train import STUDENTS
from avsbridge.train.data import BOXES_SUFFIX, index_by_slug, make_samples

log = logging.getLogger("avsbridge.train.jobs")


def train_params(ctx: JobContext) -> dict[str, Any]:
    return dict(ctx.params.get("train") or ctx.config.get("train") or {})


def train_dataset(config: dict[str, Any], dataset: str) -> str:
    """The dataset entry holding ``dataset``'s train split (pseudo-labelled clips)."""
    name = config["datasets"][dataset].get("train_dataset", f"{dataset}_train")
    if name not in config["datasets"]:
        raise KeyError(
            f"datasets.{dataset}: its train split {name!r} is not a configured dataset "
            f"(add datasets.{name} with split: train, or set datasets.{dataset}.train_dataset)"
        )
    return str(name)


# --- pseudo labels -----------------------------------------------------------------------


def pseudo_label_manifest(clips: list[Any], mask_dirs: list[Path]) -> dict[str, Any]:
    """clip -> shard of its pseudo labels, with how much foreground they hold."""
    by_slug = index_by_slug(mask_dirs, BOXES_SUFFIX)
    missing = [c for c in clips if c.slug not in by_slug]
    if missing:
        names = ", ".join(c.id for c in missing[:5])
        raise ArtifactError(
            mask_dirs[0] if mask_dirs else Path("."),
            f"pseudo labels missing for {len(missing)} clip(s) ({names}) in "
            f"{', '.join(map(str, mask_dirs))}",
        )
    frames = empty = 0
    foreground = 0.0
    entries: dict[str, Any] = {}
    for clip in clips:
        shard = by_slug[clip.slug]
        for k in range(1, clip.n_frames + 1):
            path = shard / f"{clip.slug}.{k}.png"
            if not path.is_file():
                raise ArtifactError(
                    path, f"pseudo label of frame {k} of clip {clip.id!r} is missing"
                )
            share = float((read_prob_png(path) >= 0.5).mean())
            frames += 1
            empty += int(share == 0.0)
            foreground += share
        entries[clip.id] = {"slug": clip.slug, "shard": shard.name}
    return {
        "clips": entries,
        "n_clips": len(clips),
        "n_frames": frames,
        "empty_frames": empty,
        "mean_foreground": foreground / max(frames, 1),
    }


def pseudo_labels_job(ctx: JobContext) -> None:
    dataset = ctx.wildcards["dataset"]
    clips = dataset_clips(ctx.config, dataset)
    mask_dirs = [Path(p) for p in ctx.input["masks"]]
    manifest = {"dataset": dataset, **pseudo_label_manifest(clips, mask_dirs)}
    manifest["teacher"] = {k: v for k, v in ctx.wildcards.items() if k != "dataset"}
    atomic_write_json(ctx.output, manifest)
    log.info(
        "%s: %d clips, %d frames pseudo-labelled (%d empty, mean foreground %.3f)",
        dataset,
        manifest["n_clips"],
        manifest["n_frames"],
        manifest["empty_frames"],
        manifest["mean_foreground"],
    )
    write_record(ctx.output, rule="pseudo_labels", params=ctx.params, inputs=mask_dirs)


# --- audio features ----------------------------------------------------------------------


def audio_features_job(ctx: JobContext) -> None:
    from avsbridge.train.audio_features import features_shard

    w = ctx.wildcards
    backend = w["afeat"]
    clips = shard_clips(ctx.config, w["dataset"], w["shard"])
    options = dict((train_params(ctx).get("audio_features") or {}).get(backend) or {})
    summary = features_shard(clips, backend, options, ctx.output)
    write_record(
        ctx.output,
        rule="audio_features",
        params=ctx.params,
        inputs=[c.audio for c in clips if c.audio is not None],
        extra={"backend": {"name": backend, "options": options}, "identity": summary["identity"]},
    )


# --- train -------------------------------------------------------------------------------


def train_job(ctx: JobContext) -> None:
    """One student on one teacher's pseudo labels (or GT: no ``labels`` input), one seed."""
    from avsbridge.backends.device import resolve_device
    from avsbridge.train.loop import TrainSettings, resolve, train_student

    w, config = ctx.wildcards, ctx.config
    student_name, dataset, seed = w["student"], w["dataset"], int(w["seed"])
    params = train_params(ctx)
    student_cls = STUDENTS.load_all().get(student_name)
    kind = config["datasets"][dataset]["kind"]
    options, hyper = resolve(
        student_cls,  # type: ignore[arg-type]
        kind,
        (params.get("students") or {}).get(student_name),
    )
    student = STUDENTS.create(student_name, **options)
    train_ds = train_dataset(config, dataset)
    clips = dataset_clips(config, train_ds)
    labels = [Path(p) for p in ctx.input.get("labels", [])]
    ground_truth = not labels
    samples = make_samples(
        clips,
        [Path(p) for p in ctx.input["features"]],
        labels or None,
        ground_truth=ground_truth,
    )
    n_val = min(int(params.get("val_clips", 0)), max(len(samples) - 1, 0))
    train, val = samples[: len(samples) - n_val], samples[len(samples) - n_val :]
    settings = TrainSettings(
        epochs=int(hyper["epochs"]),
        batch_size=int(hyper["batch_size"]),
        lr=float(hyper["lr"]),
        seed=seed,
        device=resolve_device(str(params.get("device", "auto"))),
        num_workers=int(params.get("num_workers", 0)),
        threads=params.get("threads"),
        val_clips=n_val,
    )
    resolved = {
        "student": student_name,
        "options": student.options,
        "hyper": {k: hyper[k] for k in ("epochs", "batch_size", "lr")},
        "dataset": dataset,
        "train_dataset": train_ds,
        "labels": "ground truth" if ground_truth else "pseudo",
        "teacher": {k: v for k, v in w.items() if k not in ("student", "dataset", "seed")},
        "train_clips": [s.clip.id for s in train],
        "val_clips": [s.clip.id for s in val],
    }
    gt_reader = object_mask_reader(config, train_ds) if ground_truth else None
    summary = train_student(student, settings, train, val, ctx.output, resolved, gt_reader)
    write_record(
        ctx.output,
        rule="train",
        params=ctx.params,
        inputs=[
            *labels,
            *map(Path, ctx.input["features"]),
            *map(Path, ctx.input.get("pseudo", [])),
        ],
        extra={
            "identity": summary["identity"],
            "checkpoint": {
                "weights_sha256": summary["weights_sha256"],
                "epochs": summary["epochs"],
            },
        },
    )


# --- predict -----------------------------------------------------------------------------


def predict_job(ctx: JobContext) -> None:
    from avsbridge.backends.device import resolve_device
    from avsbridge.train.predict import predict_shard

    w, config = ctx.wildcards, ctx.config
    checkpoint = Path(ctx.input["checkpoint"][0])
    clips = shard_clips(config, w["dataset"], w["shard"])
    device = resolve_device(str(train_params(ctx).get("device", "auto")))
    summary = predict_shard(
        clips,
        checkpoint,
        w["student"],
        [Path(p) for p in ctx.input["features"]],
        ctx.output,
        device,
    )
    frames = [Path(f) for c in clips for f in c.frames]
    write_record(
        ctx.output,
        rule="predict",
        params=ctx.params,
        inputs=[checkpoint, *map(Path, ctx.input["features"]), *frames],
        extra={"identity": summary["identity"], "model_ids": {"student": w["student"]}},
    )


__all__ = [
    "audio_features_job",
    "predict_job",
    "pseudo_labels_job",
    "train_job",
]
