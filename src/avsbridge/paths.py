"""Every artifact path of the DAG, in one place.

Rules take their output patterns from here (with Snakemake wildcards left in),
the report writer, audit, DVC targets and benchmarks ask for concrete paths of
a variant. A new stage family adds its own root here; it never adds a level to
an existing family's paths (cached artifacts stay valid).
"""

from __future__ import annotations

import string
from typing import Any

# stage family -> output pattern under the profile's results dir. Wildcards are
# the variant's path values (see :func:`variant_values`) plus ``shard``.
PATTERNS: dict[str, str] = {
    "data_check": "checks/{dataset}.json",
    "audio_text": "alm/{dataset}/{alm}/{aprompt}/{shard}",
    "translate": "text/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{shard}",
    "weak_labels": "text/{dataset}/weaklabel/label/none/none/{shard}",
    "segment": "masks/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}/{shard}",
    "evaluate": "metrics/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}.json",
    "flow": "flow/{dataset}/{flow}/{shard}",
    # OpenAVS-ST: the teacher's masks on a train split ({dataset} = that split's entry)
    "pseudo_labels": "pseudo/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}.json",
    "audio_features": "features/{dataset}/{afeat}/{shard}",
    # ... and the student ({dataset} = the test dataset; the teacher's path values follow)
    "train": "models/{dataset}/{student}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}/seed{seed}",
    "predict": "stmasks/{dataset}/{student}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}/seed{seed}/{shard}",
    "evaluate_st": "stmetrics/{dataset}/{student}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}/seed{seed}.json",
    # a wildcard named after a stage is the backend that stage runs (``families:`` fills it)
    "mllm_answers": "answers/{dataset}/{mllm_answers}/{shard}",
    "scene_description": "scenes/{dataset}/{scene_description}/{shard}",
    "text_cues": "cues/{dataset}/{scene_description}/{text_cues}/{shard}",
    "cue_recognition": "recognition/{dataset}/{scene_description}/{text_cues}.json",
    # BAaV zero-shot chain: its own roots; "none" fills a model a strategy does not use
    "zeroshot_audio": "zs_audio/{dataset}/{audio_model}/{shard}",
    "zeroshot_image": "zs_image/{dataset}/{image_model}/{shard}",
    "zeroshot_query": "zs_query/{dataset}/{audio_model}/{image_model}/{matcher}/{query}/{shard}",
    "ris": "zs_masks/{dataset}/{audio_model}/{image_model}/{matcher}/{query}/{ris}/{shard}",
    "evaluate_zeroshot": "zs_metrics/{dataset}/{audio_model}/{image_model}/{matcher}/{query}/{ris}.json",
}
# artifact-family roots (one DVC-tracked folder each)
ROOTS: dict[str, str] = {
    "checks": "checks",
    "alm": "alm",
    "text": "text",
    "llm_cache": "llm_cache",
    "vfm_cache": "vfm_cache",
    "masks": "masks",
    "metrics": "metrics",
    "flow": "flow",
    "pseudo": "pseudo",
    "features": "features",
    "models": "models",
    "stmasks": "stmasks",
    "stmetrics": "stmetrics",
    "answers": "answers",
    "scenes": "scenes",
    "cues": "cues",
    "recognition": "recognition",
    "zs_audio": "zs_audio",
    "zs_image": "zs_image",
    "zs_query": "zs_query",
    "zs_masks": "zs_masks",
    "zs_metrics": "zs_metrics",
}
# stage -> artifact-family root it writes under
FAMILY_OF_STAGE: dict[str, str] = {
    stage: pattern.split("/", 1)[0] for stage, pattern in PATTERNS.items()
}
STATE_FILE = "_snakemake_state.json"
# the paper whose tables keep the top-level report paths (reports/table1.csv)
MAIN_PAPER = "openavs"
INDEX_NAME = "index"


def results_dir(config: dict[str, Any]) -> str:
    return str(config["results_dir"])


def reports_dir(config: dict[str, Any]) -> str:
    """Reports of a profile: ``reports`` for the demo, a folder of its own otherwise."""
    return str(config.get("reports_dir", "reports"))


def logs_dir(config: dict[str, Any]) -> str:
    """Job logs, per profile, so runs of two profiles never overwrite each other's logs."""
    return f"logs/{config['profile']}"


def wildcards_of(stage: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(PATTERNS[stage]) if name]


def pattern(config: dict[str, Any], stage: str) -> str:
    """Output pattern of ``stage`` with Snakemake wildcards (``{dataset}``...) left in."""
    return f"{results_dir(config)}/{PATTERNS[stage]}"


def log_pattern(config: dict[str, Any], stage: str) -> str:
    tail = PATTERNS[stage].split("/", 1)[1].removesuffix(".json")
    return f"{logs_dir(config)}/{stage}/{tail}.log"


def path(config: dict[str, Any], stage: str, **values: Any) -> str:
    """A concrete artifact path of ``stage`` (every wildcard given)."""
    missing = [w for w in wildcards_of(stage) if w not in values]
    if missing:
        raise KeyError(f"path of stage {stage!r} needs {', '.join(missing)}")
    return pattern(config, stage).format(**values)


def threshold_key(box_threshold: float) -> str:
    return f"{float(box_threshold):.2f}"


PERTURBATION_SEP = "~"


def dataset_key(dataset: str, perturbation: str = "none") -> str:
    """The ``{dataset}`` path value: ``s4``, or ``s4~mute`` for a perturbed-audio run.

    The audio-control axis adds no level to any path: unperturbed artifacts keep
    their paths, perturbed ones get their own dataset value everywhere downstream
    of the audio (frames are the dataset's own, never copied).
    """
    return dataset if perturbation == "none" else f"{dataset}{PERTURBATION_SEP}{perturbation}"


def split_dataset_key(key: str) -> tuple[str, str]:
    """``s4~mute`` -> (``s4``, ``mute``); ``s4`` -> (``s4``, ``none``)."""
    dataset, _, perturbation = key.partition(PERTURBATION_SEP)
    return dataset, perturbation or "none"


def variant_values(variant: Any) -> dict[str, str]:
    """The path values of a variant (the wildcards of every stage it runs through)."""
    own = getattr(variant, "path_values", None)
    if own is not None:  # a variant type of another chain (the BAaV zero-shot chain)
        return dict(own())
    return {
        "dataset": dataset_key(variant.dataset, getattr(variant, "perturbation", "none")),
        "alm": variant.alm,
        "aprompts": "+".join(variant.aprompts),
        "llm": variant.llm,
        "strategy": variant.strategy,
        "vfm": variant.vfm,
        "thr": threshold_key(variant.box_threshold),
        **(
            {"student": variant.student, "seed": str(variant.seed), "afeat": variant.afeat}
            if getattr(variant, "student", "")
            else {}
        ),
    }


def variant_path(config: dict[str, Any], stage: str, variant: Any, **extra: Any) -> str:
    return path(config, stage, **{**variant_values(variant), **extra})


def metrics_path(config: dict[str, Any], variant: Any) -> str:
    """The metrics file a variant's cells are read from (its terminal stage's output)."""
    return variant_path(config, variant.terminal, variant)


def family_root(config: dict[str, Any], family: str) -> str:
    return f"{results_dir(config)}/{ROOTS[family]}"


def llm_cache_dir(config: dict[str, Any]) -> str:
    return str(config.get("llm_cache_dir", family_root(config, "llm_cache")))


def vfm_cache_dir(config: dict[str, Any]) -> str:
    """Detections + image embeddings cache (config ``vfm_cache.dir``, else under results)."""
    return str((config.get("vfm_cache") or {}).get("dir") or family_root(config, "vfm_cache"))


def state_file(config: dict[str, Any]) -> str:
    return f"{results_dir(config)}/{STATE_FILE}"


def report_stem(config: dict[str, Any], paper: str, table: str) -> str:
    """``reports/table1`` for the main paper, ``reports/baav/table1`` for the others."""
    base = reports_dir(config)
    return f"{base}/{table}" if paper == MAIN_PAPER else f"{base}/{paper}/{table}"


def audio_control_path(config: dict[str, Any]) -> str:
    return f"{reports_dir(config)}/audio_control.csv"


def flow_previews_path(config: dict[str, Any]) -> str:
    """The optical-flow preview sheet of the HTML report (its JSON record sits beside it)."""
    return f"{reports_dir(config)}/flow_previews.png"


def index_path(config: dict[str, Any]) -> str:
    return f"{reports_dir(config)}/{INDEX_NAME}.md"
