# Shared helpers: config validation, shard lists, target functions.
# Every path comes from avsbridge.paths, every stage fact from avsbridge.stages,
# every report from the paper files (avsbridge.experiments.reports()).
# Input functions read only metadata (no media I/O) so the DAG stays cheap.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from avsbridge import experiments, paths, pipeline, stages
from avsbridge.config import prepare_workflow_config
from avsbridge.provenance.code import code_hash
from avsbridge.provenance.snakemake_state import adopt_state

prepare_workflow_config(config, workflow)

R = paths.results_dir(config)
RD = paths.reports_dir(config)
LLM_CACHE = paths.llm_cache_dir(config)
REPORTS = experiments.report_tables(config)
TABLE_REPORTS = [k for k, t in REPORTS.items() if t.kind == "table"]
FIGURE_REPORTS = [k for k, t in REPORTS.items() if t.kind == "figure"]

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


def stage_code(name):
    return code_hash(*stages.stage(name).code)


def stage_log(name):
    return paths.log_pattern(config, name)


def stage_env(name, role=None):
    return str(Path(workflow.basedir) / stages.conda_env(config, name, role))


def shard_clips(w):
    return pipeline.shard_clips(config, w.dataset, w.shard)


def shard_audio(w):
    return [str(c.audio) for c in shard_clips(w) if c.audio is not None]


def dataset_metadata(w):
    # Benchmark media are immutable: jobs depend on the split list, not on
    # every frame (listing 10^5 frames as inputs costs seconds per DAG build).
    return pipeline.metadata_file(config, w.dataset)


def variant_shards(w, stage):
    values = dict(w.items())
    return [
        paths.path(config, stage, **values, shard=s)
        for s in pipeline.shard_names(config, w.dataset)
    ]


def family_outputs(family):
    """Every artifact of one family (alm, text, masks, metrics) the reports need."""
    out = []
    for v in experiments.all_variants(config):
        for name in v.stages:
            if paths.FAMILY_OF_STAGE[name] != family:
                continue
            if name == "audio_text":
                out += [
                    paths.variant_path(config, name, v, aprompt=p, shard=s)
                    for p in v.aprompts
                    for s in pipeline.shard_names(config, v.dataset)
                ]
            elif "shard" in paths.wildcards_of(name):
                out += [
                    paths.variant_path(config, name, v, shard=s)
                    for s in pipeline.shard_names(config, v.dataset)
                ]
            else:
                out.append(paths.variant_path(config, name, v))
    return list(dict.fromkeys(out))


def report_inputs(w):
    table = REPORTS[w.report]
    return [
        paths.metrics_path(config, v)
        for v in experiments.report_variants(config, table)
    ]


def report_outputs():
    out = [f"{RD}/{k}.csv" for k in TABLE_REPORTS]
    out += [f"{RD}/{k}.{ext}" for k in FIGURE_REPORTS for ext in ("png", "csv")]
    return out


# --- BAaV zero-shot chain (workflow/rules/zeroshot.smk) ---
from avsbridge.zeroshot import samples as zs_samples
from avsbridge.zeroshot_query.strategies import STRATEGIES as ZS_STRATEGIES


def zs_shard(w):
    return zs_samples.shard_samples(config, w.dataset, w.shard)


def zs_query_inputs(w):
    st = ZS_STRATEGIES[w.query]
    values = dict(w.items())
    out = {}
    if st.needs_audio:
        out["audio"] = paths.path(config, "zeroshot_audio", **values)
    if st.needs_image:
        out["image"] = paths.path(config, "zeroshot_image", **values)
    return out
