"""``reports/audio_control.csv``: which reproduced methods actually listen (TeSO's test, beyond TeSO).

For every method named in ``params.yaml`` ``audio_control.rows`` (``paper/table/row``),
each of its datasets is evaluated with normal audio and with the audio muted or
replaced by white Gaussian noise (10 dB, 40 dB; avsbridge.data.perturb), reusing every
artifact upstream of the audio. A text-bridged method that hears nothing should
segment almost nothing: the drops make that visible. Clip-level weak labels never
hear the audio, so their rows show a zero drop by construction.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from avsbridge import paths
from avsbridge.experiments import WEAK_LABEL, Variant, row_cells
from avsbridge.io import atomic_write_json, atomic_write_text, read_json
from avsbridge.papers import PaperDataError, table
from avsbridge.reports.tables import DECIMALS, profile_caption, to_csv

HEADER = [
    "method",
    "dataset",
    "audio",
    "miou",
    "fscore",
    "delta_miou",
    "delta_fscore",
    "profile",
    "metrics_file",
    "note",
]
METRICS = ("miou", "fscore")


def perturbed(variant: Variant, perturbation: str) -> Variant:
    """The same method with other audio (weak labels do not hear it: unchanged)."""
    if variant.alm == WEAK_LABEL:
        return variant
    return dataclasses.replace(variant, perturbation=perturbation)


def _row(spec: str) -> tuple[Any, Any]:
    paper, _, rest = spec.partition("/")
    table_id, _, method = rest.partition("/")
    t = table(paper, table_id)
    for row in t.rows:
        if row.method == method:
            return t, row
    raise PaperDataError(
        f"params.yaml audio_control.rows: {spec!r}: no row {method!r} in {paper}/{table_id}"
    )


def method_variants(config: dict[str, Any]) -> list[tuple[str, Variant | None, str]]:
    """(method label, normal-audio variant or None, reason) per (row, dataset)."""
    out: list[tuple[str, Variant | None, str]] = []
    for spec in config.get("audio_control", {}).get("rows", []):
        t, row = _row(spec)
        label = f"{row.method} ({t.paper} {t.id})"
        by_dataset: dict[str, tuple[Variant | None, str]] = {}
        for column in t.columns:
            c = row_cells(config, t, row)[column.id]
            if column.dataset and column.metric in METRICS and column.dataset not in by_dataset:
                by_dataset[column.dataset] = (c.variant, c.reason)
        out += [(label, v, reason) for v, reason in by_dataset.values()]
    return out


def audio_control_variants(config: dict[str, Any]) -> list[Variant]:
    perturbations = ["none", *config.get("audio_control", {}).get("perturbations", [])]
    return list(
        dict.fromkeys(
            perturbed(v, p)
            for _, v, _ in method_variants(config)
            if v is not None
            for p in perturbations
        )
    )


def audio_control_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    perturbations = ["none", *config.get("audio_control", {}).get("perturbations", [])]
    rows: list[dict[str, Any]] = []
    for label, normal, reason in method_variants(config):
        if normal is None:
            rows.append(
                {"method": label, "audio": "none", "profile": config["profile"], "note": reason}
            )
            continue
        base = read_json(paths.metrics_path(config, normal))
        for p in perturbations:
            v = perturbed(normal, p)
            path = paths.metrics_path(config, v)
            m = read_json(path)
            row = {
                "method": label,
                "dataset": normal.dataset,
                "audio": p,
                **{k: round(float(m[k]), DECIMALS) for k in METRICS},
                "profile": config["profile"],
                "metrics_file": path,
                "note": "weak labels never hear the audio" if v is normal and p != "none" else "",
            }
            for k in METRICS:
                row[f"delta_{k}"] = round(float(m[k]) - float(base[k]), DECIMALS)
            rows.append(row)
    return rows


def write_audio_control(config: dict[str, Any], out_csv: Path) -> None:
    from avsbridge.provenance.records import write_record

    rows = audio_control_rows(config)
    atomic_write_text(out_csv, to_csv(HEADER, rows))
    shown = [h for h in HEADER if h not in ("profile", "metrics_file")]
    lines = [
        "# Audio control: every reproduced method under muted and noise-replaced audio",
        "",
        f"Profile: {profile_caption(config)}",
        "",
        "Audio: none (as recorded), mute (zeros), wgn10 / wgn40 (white Gaussian noise replacing",
        "the clip, its power 10 / 40 dB below the clip's mean power: avsbridge.data.perturb).",
        "delta = perturbed - normal (protocol avsbench). A method that listens drops under mute.",
        "",
        "| " + " | ".join(shown) + " |",
        "|" + "---|" * len(shown),
        *("| " + " | ".join(str(r.get(h, "")) for h in shown) + " |" for r in rows),
    ]
    atomic_write_text(out_csv.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_json(out_csv.with_suffix(".json"), {"profile": config["profile"], "rows": rows})
    write_record(
        out_csv,
        rule="report_audio_control",
        params={"profile": config["profile"], "audio_control": config.get("audio_control", {})},
        inputs=[
            Path(p) for p in dict.fromkeys(r["metrics_file"] for r in rows if r.get("metrics_file"))
        ],
        siblings=[out_csv.with_suffix(".md"), out_csv.with_suffix(".json")],
    )
