# Shared helpers: config validation, shard lists, target functions.
# Input functions read only metadata (no media I/O) so the DAG stays cheap.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from avsbridge import experiments, pipeline
from avsbridge.config import validate_config
from avsbridge.provenance.code import code_hash
from avsbridge.provenance.snakemake_state import adopt_state

validate_config(config)

R = config["results_dir"]
TABLES = ["table1", "table3", "table4", "table5"]
GPU_BACKENDS = set(config.get("resources", {}).get("gpu_backends", []))
LLM_CACHE = config.get("llm_cache_dir", f"{R}/llm_cache")

# After `dvc pull` in a fresh clone: take over the job records that came with the
# artifacts (verified against their inputs) so nothing pulled is recomputed and
# later params/code changes still re-run. A no-op once adopted.
adopt_state(Path("."), R)


wildcard_constraints:
    dataset="[a-z0-9_]+",
    alm="[a-z0-9-]+",
    aprompt="[a-z]+",
    aprompts="[a-z+]+",
    llm="[a-z0-9-]+",
    strategy="none|pc|fc|pcfc",
    vfm="sam|sam2",
    thr="[01]\.[0-9]{2}",
    shard="s[0-9]{4}",
    report="table[0-9]+",


def shard_clips(w):
    return pipeline.shard_clips(config, w.dataset, w.shard)


def shard_audio(w):
    return [str(c.audio) for c in shard_clips(w) if c.audio is not None]


def dataset_metadata(w):
    # Benchmark media are immutable: jobs depend on the split list, not on
    # every frame (listing 10^5 frames as inputs costs seconds per DAG build).
    return pipeline.metadata_file(config, w.dataset)


def backend_of(stage, vfm=None):
    spec = config["backends"][stage] if vfm is None else config["backends"]["vfm"][vfm]
    return {"name": spec["name"], "options": dict(spec.get("options") or {})}


def gpu_for(name):
    return 1 if name in GPU_BACKENDS else 0


def text_dir(w):
    return f"{R}/text/{w.dataset}/{w.alm}/{w.aprompts}/{w.llm}/{w.strategy}/{w.shard}"


def variant_shards(w, kind):
    shards = pipeline.shard_names(config, w.dataset)
    base = f"{w.dataset}/{w.alm}/{w.aprompts}/{w.llm}/{w.strategy}"
    if kind == "masks":
        return [f"{R}/masks/{base}/{w.vfm}/{w.thr}/{s}" for s in shards]
    return [f"{R}/text/{base}/{s}" for s in shards]


def family_outputs(family):
    variants = dict.fromkeys(
        v for r in experiments.REPORTS for v in experiments.report_variants(config, r)
    )
    paths = []
    for v in variants:
        shards = pipeline.shard_names(config, v.dataset)
        if family == "alm" and v.alm != experiments.WEAK_LABEL:
            paths += [
                f"{R}/alm/{v.dataset}/{v.alm}/{p}/{s}"
                for p in v.aprompts
                for s in shards
            ]
        elif family == "text":
            paths += [f"{R}/text/{v.dataset}/{v.text_key}/{s}" for s in shards]
        elif family == "masks":
            paths += [
                f"{R}/masks/{v.dataset}/{v.text_key}/{v.vfm}/{v.threshold_key}/{s}"
                for s in shards
            ]
        elif family == "metrics":
            paths.append(v.metrics_path(R))
    return list(dict.fromkeys(paths))
