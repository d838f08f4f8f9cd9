"""What the VFM caches save: model passes per frame, sweep wall-clock, disk per 1,000 frames.

Three parts, each printing one JSON object (``--json``) or a short text summary:

``counts`` (machine independent): the whole paper-profile DAG -- every variant that
any table or figure of the four papers reads, over the real S4 / MS3 / AVSS / V3 test
lists (placeholder media, as ``bench/dag_scale.py``) -- counted as detector and
image-encoder passes. Before: every segment job (variant x threshold) runs both on
every frame. After: one encoder pass per (frame, SAM model) and one detector pass per
(frame, translation output); the detector is shared by the sam and sam2 backends
(same GroundingDINO identity) and across thresholds. Upper bounds: every frame is
assumed to have a prompt and a box; two strategies giving the same prompt share
even more (not counted: it needs the real prompts).

``demo``: wall-clock of the Figure 5 sweep (the params' ``vfm.sweep``) with the demo
matcher over demo test clips, with vs without the caches (prompts = each clip's labels).

``full``: full-size random-weight GroundingDINO (SwinT-OGC + bert-base) + SAM ViT-H on
a couple of frames (CPU): one threshold job without caches, then a cold and a warm job
with them; the sweep ratio is 7 x no-cache / (cold + 6 x warm). Also the embedding
entry's bytes (per 1,000 frames) in fp32 and fp16 storage.

    nice -n 10 python bench/vfm_cache.py counts --json
    nice -n 10 python bench/vfm_cache.py demo --clips 6 --json
    nice -n 10 python bench/vfm_cache.py full --frames 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


# --------------------------------------------------------------------------- counts


def paper_counts() -> dict[str, Any]:
    """Detector / encoder passes of the paper DAG before and after the caches."""
    import dag_scale

    from avsbridge.config import load_config
    from avsbridge.experiments import WEAK_LABEL, all_variants
    from avsbridge.paths import dataset_key
    from avsbridge.pipeline import dataset_clips

    with tempfile.TemporaryDirectory(prefix="avsbridge-vfmc-") as tmp:
        root = Path(tmp)
        data_root = root / "AVSBench_object"
        dag_scale.build_placeholder_tree(data_root)
        dag_scale.build_semantic_tree(root / "AVSBench_semantic")
        paper = dag_scale.paper_bench_config(
            data_root, root / "AVSBench_semantic", str(root / "results")
        )
        profile = root / "paper.yaml"
        profile.write_text(yaml.safe_dump(paper))
        config = load_config(profile, REPO / "params.yaml")
        variants = all_variants(config)
        frames = {
            name: [str(f) for c in dataset_clips(config, name) for f in c.frames]
            for name in {v.dataset for v in variants}
        }
    vfm_variants = [v for v in variants if "segment" in v.stages]
    before = 0
    before_by_model: Counter[str] = Counter()
    encoder_frames: dict[str, set[str]] = {}  # SAM model -> frame files it encodes
    det_upper: set[tuple[str, ...]] = set()  # (frame, dataset key, text variant)
    det_shared: set[tuple[str, ...]] = set()  # same, datasets sharing a clip share its prompt
    jobs_per_dataset: Counter[str] = Counter()
    for v in vfm_variants:
        before += len(frames[v.dataset])
        before_by_model[v.vfm] += len(frames[v.dataset])
        jobs_per_dataset[v.dataset] += 1
        encoder_frames.setdefault(v.vfm, set()).update(frames[v.dataset])
        source = (
            ("weaklabel",)
            if v.alm == WEAK_LABEL
            else (v.alm, "+".join(v.aprompts), v.llm, v.strategy)
        )
        for f in frames[v.dataset]:
            det_upper.add((f, dataset_key(v.dataset, v.perturbation), *source))
            det_shared.add((f, v.perturbation, *source))
    distinct = len({f for v in vfm_variants for f in frames[v.dataset]})
    after_enc = sum(len(fs) for fs in encoder_frames.values())
    return {
        "variants_with_vfm": len(vfm_variants),
        "distinct_frames": distinct,
        "frames_per_dataset": {d: len(fs) for d, fs in sorted(frames.items())},
        "segment_jobs_per_frame": dict(sorted(jobs_per_dataset.items())),
        "before": {
            "encoder_passes": before,
            "detector_passes": before,
            "encoder_passes_per_frame": round(before / distinct, 2),
            "detector_passes_per_frame": round(before / distinct, 2),
            "encoder_passes_per_frame_and_model": {
                m: round(n / len(encoder_frames[m]), 2) for m, n in sorted(before_by_model.items())
            },
        },
        "after": {
            "encoder_passes": after_enc,
            "encoder_passes_per_frame": round(after_enc / distinct, 2),
            "encoder_passes_per_frame_and_model": {
                m: 1.0
                for m in sorted(encoder_frames)  # one cache entry per (frame, model)
            },
            "detector_passes_upper_bound": len(det_upper),
            "detector_passes_per_frame_upper_bound": round(len(det_upper) / distinct, 2),
            "detector_passes_if_shared_clips_share_prompts": len(det_shared),
            "detector_passes_per_frame_shared": round(len(det_shared) / distinct, 2),
        },
        "saved_encoder_fraction": round(1 - after_enc / before, 3),
        "saved_detector_fraction_at_least": round(1 - len(det_upper) / before, 3),
    }


# --------------------------------------------------------------------------- demo sweep


def _sweep(
    clips: list[Any],
    text: Path,
    backend: str,
    options: dict[str, Any],
    thresholds: list[float],
    out: Path,
    cache: Any,
) -> tuple[float, list[dict[str, Any]]]:
    from avsbridge.io import read_json
    from avsbridge.segment.run import segment_shard

    calls = []
    start = time.perf_counter()
    for thr in thresholds:
        target = out / f"{thr:.2f}"
        segment_shard(clips, text, backend, options, thr, 0.25, target, cache)
        calls.append(read_json(target / "_calls.json")["vfm_calls"])
    return time.perf_counter() - start, calls


def _label_prompts(clips: list[Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        labels = list(getattr(clip, "labels", ()) or ()) or [clip.category.replace("_", " ")]
        prompt = ", ".join(labels)
        (folder / f"{clip.slug}.json").write_text(
            json.dumps({"clip": clip.id, "prompts": [prompt] * clip.n_frames})
        )
    return folder


def _calls(calls: list[dict[str, Any]], key: str) -> int | None:
    """Sum of a ``vfm_calls`` count over jobs; None where no job reports it."""
    found = [int(c[key]) for c in calls if key in c]
    return sum(found) if found else None


def demo_sweep(n_clips: int) -> dict[str, Any]:
    from avsbridge.config import load_config
    from avsbridge.pipeline import dataset_clips
    from avsbridge.segment.vfm_cache import VfmCacheSettings

    config = load_config(REPO / "config" / "config.yaml", REPO / "params.yaml")
    thresholds = [float(t) for t in config["vfm"]["sweep"]]
    clips = (dataset_clips(config, "s4") + dataset_clips(config, "ms3"))[:n_clips]
    with tempfile.TemporaryDirectory(prefix="avsbridge-vfmd-") as tmp:
        root = Path(tmp)
        text = _label_prompts(clips, root / "text")
        opts: dict[str, Any] = {}
        # load MiniLM etc. once outside the timing (both runs reuse the process)
        _sweep(clips[:1], text, "demo-matcher", opts, thresholds[:1], root / "warmup", None)
        plain_s, plain_calls = _sweep(
            clips, text, "demo-matcher", opts, thresholds, root / "plain", None
        )
        cache = VfmCacheSettings(root=root / "vfm_cache")
        cached_s, cached_calls = _sweep(
            clips, text, "demo-matcher", opts, thresholds, root / "cached", cache
        )
        same = all(
            (root / "plain" / f"{t:.2f}" / p.name).read_bytes() == p.read_bytes()
            for t in thresholds
            for p in (root / "cached" / f"{t:.2f}").glob("*.png")
        )
    frames = sum(c.n_frames for c in clips)
    return {
        "clips": len(clips),
        "frames": frames,
        "thresholds": thresholds,
        "no_cache_s": round(plain_s, 2),
        "cache_s": round(cached_s, 2),
        "ratio": round(plain_s / cached_s, 2),
        # an unstaged backend (segment() per frame) counts frames, not detector calls:
        # every one of its jobs matches every object a frame's prompt names again
        "staged": all(c.get("staged") for c in plain_calls + cached_calls),
        "detector_calls_no_cache": _calls(plain_calls, "detector_calls"),
        "detector_calls_cache": _calls(cached_calls, "detector_calls"),
        "detector_calls_per_job_cache": [c.get("detector_calls") for c in cached_calls],
        "unstaged_segment_calls_no_cache": _calls(plain_calls, "segment_calls"),
        "unstaged_segment_calls_cache": _calls(cached_calls, "segment_calls"),
        "masks_identical": same,
    }


# --------------------------------------------------------------------------- full size


def _capped_backend(max_boxes: int) -> str:
    """A bench-only ``gdino-sam`` that segments its ``max_boxes`` best boxes per frame.

    Random weights score all 900 queries alike; capping keeps SAM's decoder cost at a
    typical AVSBench frame's (as ``bench/vfm_throughput.py`` does).
    """
    from avsbridge.segment import SEGMENTERS
    from avsbridge.segment.gdino_sam import GdinoSam

    name = "bench-gdino-sam-capped"
    if name not in SEGMENTERS:

        class Capped(GdinoSam):
            def select(self, *args: Any, **kwargs: Any) -> Any:
                found = super().select(*args, **kwargs)
                return sorted(found, key=lambda d: -d.score)[:max_boxes]

        SEGMENTERS.register(name)(Capped)
    return name


def full_size(n_frames: int, max_boxes: int = 3, full: bool = True) -> dict[str, Any]:
    import vfm_throughput

    from avsbridge.data.records import Clip
    from avsbridge.io import write_png
    from avsbridge.segment.vfm_cache import VfmCacheSettings

    backend = _capped_backend(max_boxes)
    with tempfile.TemporaryDirectory(prefix="avsbridge-vfmf-") as tmp:
        root = Path(tmp)
        build_s = time.perf_counter()
        options = vfm_throughput.backend_options("gdino-sam", root / "models", "cpu", full=full)
        build_s = time.perf_counter() - build_s
        rng = np.random.default_rng(0)
        frames = []
        for k in range(n_frames):
            path = root / "frames" / f"f_{k + 1}.png"
            write_png(path, rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
            frames.append(path)
        clip = Clip(
            id="bench/f",
            subset="s4",
            split="test",
            category="bench",
            frames=tuple(frames),
            audio=None,
            masks=(None,) * n_frames,
        )
        text = root / "text"
        text.mkdir()
        (text / f"{clip.slug}.json").write_text(
            json.dumps({"clip": clip.id, "prompts": ["dog, guitar"] * n_frames})
        )
        result: dict[str, Any] = {
            "frames": n_frames,
            "boxes_per_frame": max_boxes,
            "size": "full" if full else "tiny (smoke test of this script, not a figure)",
            "build_models_s": round(build_s, 1),
        }
        # each job loads the models as a Snakemake job does; load time is in every figure
        plain_s, plain = _sweep([clip], text, backend, options, [0.0], root / "plain", None)
        result["no_cache_job_s"] = round(plain_s, 1)
        result["no_cache_calls"] = {k: plain[0][k] for k in ("detector_calls", "encoder_calls")}
        cache = VfmCacheSettings(root=root / "cache")
        cold_s, _ = _sweep([clip], text, backend, options, [0.0], root / "cold", cache)
        warm_s, warm = _sweep([clip], text, backend, options, [0.25], root / "warm", cache)
        result["cold_job_s"] = round(cold_s, 1)
        result["warm_job_s"] = round(warm_s, 1)
        result["warm_calls"] = {k: warm[0][k] for k in ("detector_calls", "encoder_calls")}
        sweep = 7
        result["figure5_ratio_estimate"] = round(
            sweep * plain_s / (cold_s + (sweep - 1) * warm_s), 2
        )
        result["embedding_bytes_per_frame"] = _entry_sizes(root / "cache")
    return result


def _entry_sizes(cache: Path) -> dict[str, Any]:
    """Bytes of one ViT-H embedding entry as stored (fp32) and re-encoded in fp16 storage."""
    from avsbridge.segment._torch_stages import array_to_tensor, tensor_to_array
    from avsbridge.segment.vfm_cache import decode_embedding_entry, encode_embedding_entry

    entry = sorted((cache / "embeddings").glob("*/*.emb"))[0]
    key = entry.name.removesuffix(".emb")
    arrays = decode_embedding_entry(entry.read_bytes(), key)
    half = {
        name: tensor_to_array(array_to_tensor(label, a, "cpu", None), "float16")
        for name, (label, a) in arrays.items()
    }
    fp16 = len(encode_embedding_entry(key, {"encoder": {}}, half))
    fp32 = entry.stat().st_size
    return {
        "float32": fp32,
        "float16": fp16,
        "gb_per_1000_frames_float32": round(fp32 * 1000 / 1e9, 2),
        "gb_per_1000_frames_float16": round(fp16 * 1000 / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("part", choices=["counts", "demo", "full"])
    parser.add_argument("--clips", type=int, default=6, help="demo: test clips in the sweep")
    parser.add_argument("--frames", type=int, default=2, help="full: frames per job")
    parser.add_argument("--boxes", type=int, default=3, help="full: boxes segmented per frame")
    parser.add_argument("--tiny", action="store_true", help="full: tiny models (smoke test)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.part == "counts":
        result = paper_counts()
    elif args.part == "demo":
        result = demo_sweep(args.clips)
    else:
        result = full_size(args.frames, args.boxes, full=not args.tiny)
    _print(result, args.json)


if __name__ == "__main__":
    main()
