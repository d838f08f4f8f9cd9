"""Which runs each table cell needs, and where their artifacts live.

A *variant* is one path through the pipeline (dataset, ALM + prompts, LLM +
strategy, VFM + box threshold). Table recipes (the ``reproduce`` keys of the
paper-number files) expand into variants; the Snakefile asks this module for
the metric files a report needs, and the report writer asks it which metric
file fills which cell. One naming scheme, used by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

WEAK_LABEL = "weaklabel"
NO_LLM = "none"
STRATEGIES = ("none", "pc", "fc", "pcfc")
# Column prefixes of the paper tables -> config dataset keys.
DATASET_OF_PREFIX = {"s4": "s4", "ms3": "ms3", "v3": "v3_unseen"}


@dataclass(frozen=True)
class Variant:
    """One configuration of the pipeline on one dataset."""

    dataset: str
    alm: str
    aprompts: tuple[str, ...]
    llm: str
    strategy: str
    vfm: str
    box_threshold: float

    @property
    def text_key(self) -> str:
        return f"{self.alm}/{'+'.join(self.aprompts)}/{self.llm}/{self.strategy}"

    @property
    def threshold_key(self) -> str:
        return f"{self.box_threshold:.2f}"

    def metrics_path(self, results_dir: str) -> str:
        return f"{results_dir}/metrics/{self.dataset}/{self.text_key}/{self.vfm}/{self.threshold_key}.json"


def paper_tables(paper: str = "openavs") -> dict[str, Any]:
    text = (
        resources.files("avsbridge.resources.paper_numbers").joinpath(f"{paper}.yaml").read_text()
    )
    return yaml.safe_load(text)["tables"]


@dataclass(frozen=True)
class Cell:
    """What fills one reproduced cell: a variant + a metric, or why it stays empty."""

    variant: Variant | None
    metric: str
    reason: str = ""


def default_variant(
    config: dict[str, Any], dataset: str, vfm: str = "sam", **change: Any
) -> Variant:
    strategy = change.pop("strategy", config["llm"]["strategy"])
    llm = change.pop("llm", config["backends"]["llm"]["name"])
    if "aprompts" in change:
        aprompts = tuple(change.pop("aprompts"))
    elif strategy in ("pc", "pcfc"):
        aprompts = tuple(config["alm"]["prompts"])
    else:
        aprompts = (config["alm"]["default_prompt"],)
    return Variant(
        dataset=dataset,
        alm=change.pop("alm", config["backends"]["alm"]["name"]),
        aprompts=aprompts,
        llm=llm,
        strategy=strategy,
        vfm=vfm,
        box_threshold=float(change.pop("box_threshold", config["vfm"]["box_threshold"])),
    )


def _missing_reason(config: dict[str, Any], dataset: str, vfm: str) -> str:
    if dataset not in config["datasets"]:
        return f"dataset {dataset!r} is not part of profile {config['profile']!r}"
    if config["backends"]["vfm"].get(vfm) is None:
        return f"profile {config['profile']!r} has no {vfm.upper()} backend"
    return ""


def _weak_label_reason(config: dict[str, Any], dataset: str) -> str:
    spec = config["datasets"][dataset]
    if spec["kind"] == "ms3" and not spec.get("weak_labels"):
        return (
            f"{dataset}: the official MS3 metadata has no clip-level label; "
            f"set datasets.{dataset}.weak_labels (a name,labels CSV) to compute OpenAVS*"
        )
    return ""


def row_cells(config: dict[str, Any], table: str, row: dict[str, Any]) -> dict[str, Cell]:
    """Map each metric column of a paper row to what reproduces it."""
    recipe = row.get("reproduce")
    columns = paper_tables()[table]["columns"]
    cells: dict[str, Cell] = {}
    for column in columns:
        prefix, _, metric = column.partition("_")
        if recipe is None:
            cells[column] = Cell(None, metric, "reported by the paper only (another method)")
            continue
        if recipe in ("openavs_st", "openavs_st_sam2"):
            cells[column] = Cell(None, metric, "OpenAVS-ST (self-training) is not implemented yet")
            continue
        if table == "table3":
            with_llm = prefix == "w"
            metric = column.rsplit("_", 1)[1]
            dataset = "s4"
            change: dict[str, Any] = {"aprompts": (row["alm_prompt"],), "strategy": "none"}
            if not with_llm:
                change["llm"] = NO_LLM
            vfm = "sam"
        elif table == "table4":
            dataset, vfm = "s4", "sam"
            change = {"strategy": row["strategy"]}
            if column == "api_calls_per_instance":
                metric = "alm_calls_per_instance"
        else:
            dataset = DATASET_OF_PREFIX[prefix]
            vfm = "sam2" if recipe == "openavs_sam2" else "sam"
            change = {}
            if recipe == "openavs_weak":
                change = {
                    "alm": WEAK_LABEL,
                    "aprompts": ("label",),
                    "llm": NO_LLM,
                    "strategy": "none",
                }
        reason = _missing_reason(config, dataset, vfm)
        if not reason and recipe == "openavs_weak":
            reason = _weak_label_reason(config, dataset)
        if reason:
            cells[column] = Cell(None, metric, reason)
            continue
        cells[column] = Cell(default_variant(config, dataset, vfm, **change), metric)
    return cells


def figure5_variants(config: dict[str, Any]) -> list[Variant]:
    return [
        default_variant(config, dataset, box_threshold=threshold)
        for dataset in ("s4", "ms3")
        if dataset in config["datasets"]
        for threshold in config["vfm"]["sweep"]
    ]


def report_variants(config: dict[str, Any], report: str) -> list[Variant]:
    """Every variant whose metrics a report reads (deduplicated, ordered)."""
    if report == "figure5":
        variants = figure5_variants(config)
    else:
        variants = [
            cell.variant
            for row in paper_tables()[report]["rows"]
            for cell in row_cells(config, report, row).values()
            if cell.variant is not None
        ]
    return list(dict.fromkeys(variants))


REPORTS = ("table1", "table3", "table4", "table5", "figure5")
