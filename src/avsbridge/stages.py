"""Every stage family, declared once.

A declaration says which rule builds the family, which backend registry and
config entry choose its model, which package modules its rule hashes (so a code
change re-runs exactly that family), its conda env (a backend may name its
own), the variant fields it consumes, and its summary contract. The Snakefile,
the report writer, audit, the cache CLI, DVC and the wiring test derive their
lists of stages from here; a table cell whose recipe needs a stage that is not
declared here is empty with a reason naming the stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsbridge import paths
from avsbridge.registry import BackendNeeds, Registry

# The summary each shard job writes beside its artifacts (backend identity, counts).
SUMMARY_NAME = "_summary.json"


@dataclass(frozen=True)
class Stage:
    """One stage family: one rule, one artifact family, one package."""

    name: str  # also the rule name and the key of its path pattern in avsbridge.paths
    job: str  # "module:function" the rule's script calls with a JobContext
    code: tuple[str, ...]  # modules whose source hash is the rule's code param
    env: str  # conda env file stem under envs/ (a backend's own env wins)
    fields: tuple[str, ...]  # variant fields this stage consumes
    params: tuple[str, ...] = ()  # params.yaml sections its rule reads (DVC params)
    registry: str | None = None  # "module:NAME" of the backend registry
    backend: str | None = None  # config key under ``backends`` that names the backend
    summary: str | None = SUMMARY_NAME  # file every output folder holds (None: a file output)
    gpu_capable: bool = False  # whether the rule declares a gpu resource at all
    mem_mb: int = 1000  # peak memory of one job unless its backend declares its own
    runner_options: tuple[str, ...] = ()  # backend options the stage runner takes itself
    precondition: Callable[[dict[str, Any], dict[str, Any]], str] | None = field(
        default=None, compare=False
    )

    @property
    def family(self) -> str:
        return paths.FAMILY_OF_STAGE[self.name]

    def load_registry(self) -> Registry[Any] | None:
        if self.registry is None:
            return None
        module, _, name = self.registry.partition(":")
        registry: Registry[Any] = getattr(importlib.import_module(module), name)
        return registry.load_all()


def _weak_label_reason(config: dict[str, Any], fields: dict[str, Any]) -> str:
    spec = config["datasets"][fields["dataset"]]
    if spec["kind"] == "ms3" and not spec.get("weak_labels"):
        return (
            f"{fields['dataset']}: the official MS3 metadata has no clip-level label; "
            f"set datasets.{fields['dataset']}.weak_labels (a name,labels CSV) to compute OpenAVS*"
        )
    return ""


def _clip_label_reason(config: dict[str, Any], fields: dict[str, Any]) -> str:
    """REC#1 needs each clip's ground-truth categories (S4 category, AVSS labels, MS3
    weak labels): the official MS3 metadata has none."""
    spec = config["datasets"][fields["dataset"]]
    if spec["kind"] == "ms3" and not spec.get("weak_labels"):
        return (
            f"{fields['dataset']}: REC#1 needs each clip's ground-truth categories and the "
            f"official MS3 metadata has none; set datasets.{fields['dataset']}.weak_labels"
        )
    return ""


def _zeroshot_query_reason(config: dict[str, Any], fields: dict[str, Any]) -> str:
    """Why a strategy cannot run on this profile (its matcher cannot invert audio), or ""."""
    from avsbridge.zeroshot_query.strategies import STRATEGIES

    name = fields.get("query")
    if name not in STRATEGIES:
        return f"unknown zero-shot strategy {name!r} (known: {', '.join(STRATEGIES)})"
    if STRATEGIES[name].source != "audio_embedding":
        return ""
    entry = config["backends"].get("zs_match")
    if entry is None:
        return f"profile {config['profile']!r} has no backends.zs_match"
    registry = importlib.import_module("avsbridge.zeroshot_query").MATCHERS.load_all()
    factory = registry.get(entry["name"])
    if not getattr(factory, "can_invert", False):
        return (
            f"{name}: needs an audio encoder trained against the RIS model's frozen text "
            f"encoder, whose pseudo-word tokens the RIS reads (BAaV: CLAP with a frozen CLIP "
            f"text encoder, not released); profile {config['profile']!r} matches with "
            f"{entry['name']!r} ({entry.get('label', '')}) and its RIS takes words, so it "
            "cannot invert audio"
        )
    return ""


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            name="data_check",
            mem_mb=1000,
            job="avsbridge.data.check:data_check_stage",
            code=("avsbridge.data",),
            env="core",
            fields=("dataset",),
            summary=None,
        ),
        Stage(
            name="audio_text",
            mem_mb=2000,
            params=("alm",),
            job="avsbridge.pipeline:audio_text_job",
            code=("avsbridge.audio_text", "avsbridge.pipeline"),
            env="audio_text",
            fields=("dataset", "alm", "aprompts", "perturbation"),
            registry="avsbridge.audio_text:AUDIO_TEXTERS",
            backend="alm",
            gpu_capable=True,
        ),
        Stage(
            name="translate",
            mem_mb=1000,
            params=("alm", "llm"),
            job="avsbridge.pipeline:translate_job",
            code=("avsbridge.translate", "avsbridge.pipeline"),
            env="translate",
            fields=("llm", "strategy"),
            registry="avsbridge.translate:TRANSLATORS",
            backend="llm",
            runner_options=("failure_policy",),
        ),
        Stage(
            name="weak_labels",
            mem_mb=500,
            job="avsbridge.pipeline:weak_labels_job",
            code=("avsbridge.translate", "avsbridge.pipeline"),
            env="translate",
            fields=("dataset", "alm", "aprompts", "llm", "strategy", "perturbation"),
            precondition=_weak_label_reason,
        ),
        Stage(
            name="segment",
            mem_mb=4000,
            params=("vfm",),
            job="avsbridge.pipeline:segment_job",
            code=("avsbridge.segment", "avsbridge.pipeline"),
            env="segment",
            fields=("vfm", "box_threshold"),
            registry="avsbridge.segment:SEGMENTERS",
            backend="vfm",
            gpu_capable=True,
            runner_options=("batch_size",),
        ),
        # --- BAaV zero-shot chain (avsbridge.zeroshot) ---
        Stage(
            name="zeroshot_audio",
            mem_mb=1000,
            job="avsbridge.zeroshot.jobs:zeroshot_audio_job",
            code=("avsbridge.zeroshot_audio", "avsbridge.zeroshot.jobs"),
            env="audio_text",
            fields=("dataset", "audio_model"),
            registry="avsbridge.zeroshot_audio:AUDIO_ANALYSERS",
            backend="zs_audio",
            gpu_capable=True,
        ),
        Stage(
            name="zeroshot_image",
            mem_mb=1000,
            job="avsbridge.zeroshot.jobs:zeroshot_image_job",
            code=("avsbridge.zeroshot_image", "avsbridge.zeroshot.jobs"),
            env="zeroshot",
            fields=("dataset", "image_model"),
            registry="avsbridge.zeroshot_image:IMAGE_CAPTIONERS",
            backend="zs_image",
            gpu_capable=True,
        ),
        Stage(
            name="zeroshot_query",
            mem_mb=1000,
            params=("zeroshot_inversion",),
            job="avsbridge.zeroshot.jobs:zeroshot_query_job",
            code=("avsbridge.zeroshot_query", "avsbridge.zeroshot.jobs"),
            env="zeroshot",
            fields=("dataset", "audio_model", "image_model", "matcher", "query"),
            registry="avsbridge.zeroshot_query:MATCHERS",
            backend="zs_match",
            gpu_capable=True,
            precondition=_zeroshot_query_reason,
        ),
        Stage(
            name="ris",
            mem_mb=2000,
            job="avsbridge.zeroshot.jobs:ris_job",
            code=("avsbridge.ris", "avsbridge.zeroshot.jobs"),
            env="segment",
            fields=("ris",),
            registry="avsbridge.ris:RIS_MODELS",
            backend="ris",
            gpu_capable=True,
        ),
        Stage(
            name="evaluate_zeroshot",
            mem_mb=1500,
            job="avsbridge.zeroshot.jobs:evaluate_zeroshot_job",
            code=("avsbridge.metrics", "avsbridge.ris", "avsbridge.zeroshot.jobs"),
            env="core",
            fields=("dataset",),
            summary=None,
        ),
        Stage(
            name="evaluate",
            mem_mb=1500,
            params=("evaluation",),
            job="avsbridge.pipeline:evaluate_job",
            code=("avsbridge.metrics", "avsbridge.pipeline"),
            env="core",
            fields=("dataset",),
            summary=None,
        ),
        Stage(
            name="flow",
            params=("flow",),
            mem_mb=2000,
            job="avsbridge.flow.job:flow_stage",
            code=("avsbridge.flow", "avsbridge.pipeline"),
            env="flow",
            fields=("dataset", "flow"),
            registry="avsbridge.flow:FLOW_BACKENDS",
            backend="flow",
            gpu_capable=True,
        ),
        Stage(
            name="pseudo_labels",
            job="avsbridge.train.jobs:pseudo_labels_job",
            code=("avsbridge.train.jobs", "avsbridge.train.data"),
            env="train",
            fields=("teacher",),
            summary=None,
        ),
        Stage(
            name="audio_features",
            job="avsbridge.train.jobs:audio_features_job",
            code=("avsbridge.train.audio_features",),
            env="train",
            fields=(),
            params=("train",),
            registry="avsbridge.train.audio_features:AUDIO_FEATURES",
            mem_mb=2000,
        ),
        Stage(
            name="train",
            job="avsbridge.train.jobs:train_job",
            code=("avsbridge.train",),
            env="train",
            fields=("student", "seed"),
            params=("train",),
            registry="avsbridge.train:STUDENTS",
            gpu_capable=True,
            mem_mb=6000,
        ),
        Stage(
            name="predict",
            job="avsbridge.train.jobs:predict_job",
            code=("avsbridge.train",),
            env="train",
            fields=(),
            params=("train",),
            gpu_capable=True,
            mem_mb=3000,
        ),
        Stage(
            name="evaluate_st",
            job="avsbridge.pipeline:evaluate_job",
            code=("avsbridge.metrics", "avsbridge.pipeline"),
            env="core",
            fields=(),
            params=("evaluation",),
            summary=None,
            mem_mb=1500,
        ),
        Stage(
            name="mllm_answers",
            params=("mllm_answers",),
            mem_mb=3000,
            job="avsbridge.mllm.job:mllm_answers_stage",
            code=("avsbridge.mllm", "avsbridge.translate", "avsbridge.pipeline"),
            env="mllm",
            fields=("dataset", "mllm", "question"),
            registry="avsbridge.mllm:MLLM_ANSWERERS",
            backend="mllm_answers",
            gpu_capable=True,
            runner_options=("failure_policy",),
        ),
        Stage(
            name="scene_description",
            mem_mb=2000,
            job="avsbridge.mllm.job:scene_description_stage",
            code=("avsbridge.mllm", "avsbridge.translate", "avsbridge.pipeline"),
            env="mllm",
            fields=("dataset", "mllm"),
            registry="avsbridge.mllm:SCENE_DESCRIBERS",
            backend="scene_description",
            gpu_capable=True,
            runner_options=("failure_policy",),
        ),
        Stage(
            name="text_cues",
            params=("text_cues",),
            mem_mb=2500,
            job="avsbridge.cues.job:text_cues_stage",
            code=("avsbridge.cues", "avsbridge.mllm", "avsbridge.translate", "avsbridge.pipeline"),
            env="mllm",
            fields=("dataset", "llm", "cues"),
            registry="avsbridge.translate:TRANSLATORS",
            backend="text_cues",
            gpu_capable=True,
            runner_options=("failure_policy",),
        ),
        Stage(
            name="cue_recognition",
            mem_mb=500,
            job="avsbridge.cues.job:cue_recognition_stage",
            code=("avsbridge.metrics", "avsbridge.cues", "avsbridge.pipeline"),
            env="core",
            fields=("dataset", "cues"),
            summary=None,
            precondition=_clip_label_reason,
        ),
    )
}


def student_backend(config: dict[str, Any], role: str) -> str:
    """The registered student a profile trains for a paper's student role (``tpavi``...):
    ``students: {tpavi: demo}`` makes the demo student stand in; default: the role itself."""
    return str((config.get("students") or {}).get(role, role))


def extra_outputs(config: dict[str, Any]) -> dict[str, list[str]]:
    """Families a profile builds on named datasets although no table cell needs them yet
    (``families: {flow: [s4, ms3]}``): artifacts later stages (SSP's model) consume.
    Datasets the profile does not define are left out (a slice of the profile keeps working)."""
    return {
        name: [d for d in datasets if d in config["datasets"]]
        for name, datasets in (config.get("families") or {}).items()
    }


def families() -> list[str]:
    """Artifact families in DAG order (each one DVC stage and one ``<family>_outputs`` target)."""
    return list(dict.fromkeys(st.family for st in STAGES.values()))


# Rules that are not stage families (reports, figures, targets), for audit and logs.
REPORT_RULES = (
    "report_table",
    "report_figure",
    "report_audio_control",
    "report_training_curves",
    "report_flow_previews",
    "report_index",
)

# Evaluation protocols the evaluate stage computes, per dataset kind; a column
# whose protocol is not listed for its dataset is empty with that reason.
PROTOCOLS_OF_KIND: dict[str, tuple[str, ...]] = {
    "s4": ("avsbench", "calls", "teso-rec-cues"),  # (ST cells: the same protocol, stmetrics)
    "ms3": ("avsbench", "calls", "teso-rec-cues"),
    "v3": ("avsbench", "calls"),
    "avss": ("avsbench", "calls", "teso-rec-cues"),
    **dict.fromkeys(
        ("is3", "s4-zeroshot", "vpo-ss", "demo-zeroshot", "s4-frames"), ("zeroshot-baav",)
    ),
}
# Backends configured per role (backends.<key>.<role>: {name, options} or null).
ROLE_BACKENDS: dict[str, str] = {"vfm": "sam", "ris": "asda"}


class UnknownStageError(KeyError):
    """A name that no stage declaration has."""


def stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise UnknownStageError(f"unknown stage {name!r} (declared: {', '.join(STAGES)})") from None


def backend_spec(
    config: dict[str, Any], stage_name: str, role: str | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """``{"name", "options"}`` of the backend a stage runs on this profile.

    ``role``: for the VFM, which of ``backends.vfm`` (sam | sam2); for the LLM,
    "none" selects the no-LLM passthrough. ``dataset``: its
    ``backend_options.<backend key>`` override the backend's options (e.g. the demo
    matcher's vocabulary of a dataset with other classes).
    """
    st = stage(stage_name)
    if st.backend is None:
        return {"name": "none", "options": {}}
    entry = config["backends"].get(st.backend)
    if entry is None:
        raise KeyError(f"profile {config['profile']!r} has no backends.{st.backend}")
    if st.backend in ROLE_BACKENDS:
        entry = entry.get(role or ROLE_BACKENDS[st.backend])
        if entry is None:
            raise KeyError(f"profile {config['profile']!r} has no backends.{st.backend}.{role}")
    elif st.backend == "llm" and role == "none":
        return {"name": "none", "options": {}}
    options = dict(entry.get("options") or {})
    if dataset is not None:
        overrides = config["datasets"][dataset].get("backend_options") or {}
        options.update(overrides.get(st.backend) or {})
    return {"name": entry["name"], "options": options}


def backend_needs(config: dict[str, Any], stage_name: str, role: str | None = None) -> BackendNeeds:
    st = stage(stage_name)
    registry = st.load_registry()
    if registry is None or st.backend is None:  # no profile-chosen backend (e.g. per-job students)
        return BackendNeeds()
    return registry.needs(backend_spec(config, stage_name, role)["name"])


def gpu_count(config: dict[str, Any], stage_name: str, role: str | None = None) -> int:
    """The ``gpu`` resource of one job (0 or 1): the config's ``gpu:`` of the backend entry,
    else what the backend registered."""
    st = stage(stage_name)
    if st.backend is not None and not (st.backend == "llm" and role == "none"):
        entry = config["backends"].get(st.backend) or {}
        if st.backend == "vfm":
            entry = entry.get(role or "sam") or {}
        if "gpu" in entry:
            return 1 if entry["gpu"] else 0
    return 1 if backend_needs(config, stage_name, role).gpu else 0


def mem_mb(config: dict[str, Any], stage_name: str, role: str | None = None) -> int:
    """The ``mem_mb`` resource of one job: the backend's declared peak, else the stage's."""
    return backend_needs(config, stage_name, role).mem_mb or stage(stage_name).mem_mb


def conda_env(config: dict[str, Any], stage_name: str, role: str | None = None) -> str:
    """The conda env file a stage's job runs in: the backend's own, else the stage's."""
    env = backend_needs(config, stage_name, role).env or stage(stage_name).env
    return f"envs/{env}.yaml"


def configured_backends(config: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(stage, role, spec) of every backend the profile configures."""
    found: list[tuple[str, str | None, dict[str, Any]]] = []
    for st in STAGES.values():
        if st.backend is None:
            continue
        entry = config["backends"].get(st.backend)
        if st.backend in ROLE_BACKENDS:
            for role, spec in (entry or {}).items():
                if spec is not None:
                    found.append((st.name, role, backend_spec(config, st.name, role)))
        elif entry is not None:
            found.append((st.name, None, backend_spec(config, st.name)))
    return found


def check_backends(config: dict[str, Any]) -> list[str]:
    """Problems with the profile's backends: unknown names, options they do not accept."""
    problems: list[str] = []
    found = list(configured_backends(config))
    for dataset, ds in config["datasets"].items():
        for key in ds.get("backend_options") or {}:
            for stage_name, role, _ in configured_backends(config):
                if stage(stage_name).backend == key:
                    found.append(
                        (stage_name, role, backend_spec(config, stage_name, role, dataset))
                    )
    for stage_name, role, spec in found:
        registry = stage(stage_name).load_registry()
        assert registry is not None
        key = f"backends.{stage(stage_name).backend}" + (f".{role}" if role else "")
        if spec["name"] not in registry:
            problems.append(
                f"{key}.name: unknown {registry.stage} backend {spec['name']!r} "
                f"(known: {', '.join(registry.names())})"
            )
            continue
        runner = stage(stage_name).runner_options
        options = {k: v for k, v in spec["options"].items() if k not in runner}
        for option in registry.check_options(spec["name"], options):
            accepted = sorted({*(registry.needs(spec["name"]).options or ()), *runner})
            problems.append(
                f"{key}.options.{option}: backend {spec['name']!r} has no option {option!r} "
                f"(accepted: {', '.join(accepted)})"
            )
    return problems


# --- the rules' entry point -------------------------------------------------------------


@dataclass
class JobContext:
    """What a stage job gets from its Snakemake rule, without Snakemake objects."""

    config: dict[str, Any]
    wildcards: dict[str, str]
    input: dict[str, list[Path]]
    output: Path
    params: dict[str, Any]
    log: str | None


def job_context(smk: Any) -> JobContext:
    named_inputs = {
        name: [Path(p) for p in ([value] if isinstance(value, str) else list(value))]
        for name, value in smk.input.items()
    }
    return JobContext(
        config=smk.config,
        wildcards=dict(smk.wildcards.items()),
        input=named_inputs,
        output=Path(smk.output[0]),
        params=dict(smk.params.items()),
        log=smk.log[0] if smk.log else None,
    )


def run_stage(name: str, smk: Any) -> None:
    """The one call of every ``workflow/scripts/<stage>.py``: log setup, then the job."""
    import logging

    from avsbridge.backends.slots import gpu_slot
    from avsbridge.pipeline import setup_logging

    ctx = job_context(smk)
    setup_logging(ctx.log)
    module, _, function = stage(name).job.partition(":")
    wanted = int(dict(smk.resources.items()).get("gpu", 0) or 0)
    try:
        # one device per running GPU job on a multi-GPU machine (SLURM's own choice is kept)
        with gpu_slot(wanted, label=f"{name} {ctx.wildcards}"):
            getattr(importlib.import_module(module), function)(ctx)
    except BaseException:
        # the job's log holds the traceback (on SLURM the scheduler's file is elsewhere)
        logging.getLogger(f"avsbridge.{name}").exception("job failed")
        raise
