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
from avsbridge.provenance.records import scrub
from avsbridge.provenance.snakemake_state import adopt_state
from avsbridge.reports import flow_previews
from avsbridge.reports.audio_control import audio_control_variants

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
    dataset="[a-z0-9_]+(~(mute|wgn10|wgn40))?",
    alm="[a-z0-9-]+",
    aprompt="[a-z]+",
    aprompts="[a-z+]+",
    llm="[a-z0-9-]+",
    strategy="none|pc|fc|pcfc",
    vfm="sam|sam2|gt",
    thr="[01]\.[0-9]{2}",
    shard="s[0-9]{4}",
    flow="[a-z0-9-]+",
    student="[a-z0-9_]+",
    seed="[0-9]+",
    afeat="[a-z0-9-]+",
    mllm_answers="[a-z0-9.-]+",
    scene_description="[a-z0-9.-]+",
    text_cues="[a-z0-9.-]+",


def stage_code(name):
    return code_hash(*stages.stage(name).code)


def stage_log(name):
    return paths.log_pattern(config, name)


def stage_env(name, role=None):
    return str(Path(workflow.basedir) / stages.conda_env(config, name, role))


def backend_param(*args):
    # Snakemake stores params in .snakemake/metadata: a secret in the config never goes there
    # (jobs read their real options from the config, not from params)
    return scrub(stages.backend_spec(config, *args))


def base_dataset(w):
    """The configured dataset of a (possibly audio-perturbed, ``s4~mute``) dataset key."""
    return paths.split_dataset_key(w.dataset)[0]


def llm_candidates(w):
    if w.llm == "none":
        return []
    options = stages.backend_spec(config, "translate", w.llm, base_dataset(w))[
        "options"
    ]
    return [options["candidates"]] if options.get("candidates") else []


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


def train_split(w):
    return experiments.train_split_of(config, base_dataset(w))


def teacher_values(w):
    """The teacher's path values of an OpenAVS-ST job: its wildcards on the train split."""
    return {**dict(w.items()), "dataset": train_split(w)}


def teacher_shards(w, stage):
    if w.alm == experiments.GT_TEACHER:  # the upper bound trains on ground truth
        return []
    values = teacher_values(w)
    return [
        paths.path(config, stage, **values, shard=s)
        for s in pipeline.shard_names(config, values["dataset"])
    ]


def teacher_path(w, stage):
    if w.alm == experiments.GT_TEACHER:
        return []
    return paths.path(config, stage, **teacher_values(w))


def student_afeat(w):
    from avsbridge.train import STUDENTS

    return STUDENTS.load_all().get(w.student).audio_features


def student_gpu(w):
    from avsbridge.train import STUDENTS

    return 1 if STUDENTS.load_all().needs(w.student).gpu else 0


def feature_shards(w, dataset):
    return [
        paths.path(
            config, "audio_features", dataset=dataset, afeat=student_afeat(w), shard=s
        )
        for s in pipeline.shard_names(config, dataset)
    ]


def chain_outputs(v):
    """(stage, path) of every artifact a variant's cells need, its teacher's included."""
    if getattr(v, "student", ""):
        out = []
        if v.alm != experiments.GT_TEACHER:
            out += chain_outputs(v.teacher())
            out.append(
                (
                    "pseudo_labels",
                    paths.variant_path(config, "pseudo_labels", v.teacher()),
                )
            )
        for ds in (v.train_dataset, v.dataset):
            out += [
                (
                    "audio_features",
                    paths.path(
                        config, "audio_features", dataset=ds, afeat=v.afeat, shard=s
                    ),
                )
                for s in pipeline.shard_names(config, ds)
            ]
        out.append(("train", paths.variant_path(config, "train", v)))
        out += [
            ("predict", paths.variant_path(config, "predict", v, shard=s))
            for s in pipeline.shard_names(config, v.dataset)
        ]
        out.append(("evaluate_st", paths.variant_path(config, "evaluate_st", v)))
        return out
    out = []
    for name in v.stages:
        if name == "audio_text":
            out += [
                (name, paths.variant_path(config, name, v, aprompt=p, shard=s))
                for p in v.aprompts
                for s in pipeline.shard_names(config, v.dataset)
            ]
        elif "shard" in paths.wildcards_of(name):
            out += [
                (name, paths.variant_path(config, name, v, shard=s))
                for s in pipeline.shard_names(config, v.dataset)
            ]
        else:
            out.append((name, paths.variant_path(config, name, v)))
    return out


def family_outputs(family):
    """Every artifact of one family (alm, text, masks, metrics, ...) the reports need."""
    out = []
    for v in dict.fromkeys(
        [*experiments.all_variants(config), *audio_control_variants(config)]
    ):
        out += [
            p for name, p in chain_outputs(v) if paths.FAMILY_OF_STAGE[name] == family
        ]
    return list(dict.fromkeys(out + extra_family_outputs(family)))


def extra_family_outputs(family=None):
    """Families the profile builds on named datasets although no table cell needs them
    yet (``families:`` in the profile, e.g. optical flow for SSP)."""
    out = []
    for name, datasets in stages.extra_outputs(config).items():
        if family is not None and paths.FAMILY_OF_STAGE[name] != family:
            continue
        # a wildcard named after a stage is the backend that stage runs on this profile
        backends = {
            w: stages.backend_spec(config, w)["name"]
            for w in paths.wildcards_of(name)
            if w in stages.STAGES
        }
        out += [
            paths.path(config, name, dataset=d, shard=s, **backends)
            for d in datasets
            for s in pipeline.shard_names(config, d)
        ]
    return list(dict.fromkeys(out))


def report_inputs(w):
    table = REPORTS[w.report]
    return [
        paths.metrics_path(config, v)
        for v in experiments.report_variants(config, table)
    ]


def checkpoint_folders():
    """Every student checkpoint folder a report reads (its training curves are a figure)."""
    return [p for p in family_outputs("models")]


def report_outputs():
    out = [f"{RD}/{k}.csv" for k in TABLE_REPORTS] + [paths.audio_control_path(config)]
    out.append(f"{RD}/training_curves.png")
    out.append(paths.flow_previews_path(config))
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
