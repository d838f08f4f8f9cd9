"""Build any paper table: the paper's rows (source=paper) beside reproduced rows.

A reproduced cell is read from the metrics file of the variant that produces
it (``avsbridge.experiments``); a cell this profile cannot compute stays empty
and the row's ``note`` says why. Numbers are never invented: every value comes
from a metrics file, scaled to the paper's printed unit.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from avsbridge import paths
from avsbridge.experiments import Cell, metric_value, row_cells
from avsbridge.io import atomic_write_json, atomic_write_text, read_json
from avsbridge.papers import Column, Row, Table

# Private row key: which metrics file and key fill each reproduced cell (not a CSV column).
SOURCES_KEY = "_sources"
DECIMALS = 4


def profile_caption(config: dict[str, Any]) -> str:
    """What the profile is, for every reproduced table's caption (from the profile file)."""
    about = str(config.get("about") or "").strip()
    return about or f"profile {config['profile']}"


def row_label(table: Table, row: Row) -> str:
    """A row's method, made unique with its descriptive columns where methods repeat."""
    same = [r for r in table.rows if r.method == row.method]
    if len(same) == 1:
        return row.method
    info = ", ".join(str(row.info.get(i, "")) for i, _ in table.info_columns)
    return f"{row.method} [{info}]" if info else row.method


def scaled(table: Table, column: Column, value: float) -> float:
    return round(float(value) * table.scale_of(column), DECIMALS)


def header_of(table: Table) -> list[str]:
    return [
        "table",
        "method",
        "source",
        "profile",
        *[i for i, _ in table.info_columns],
        *[c.id for c in table.columns],
        "config",
        "metrics_files",
        "note",
    ]


def _info_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def build_table(config: dict[str, Any], table: Table) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of ``table`` as dicts, with the header order."""
    rows: list[dict[str, Any]] = []
    for paper_row in table.rows:
        base = {
            "table": table.key,
            "method": row_label(table, paper_row),
            **{i: _info_value(paper_row.info.get(i, "")) for i, _ in table.info_columns},
        }
        rows.append(
            {
                **base,
                "source": "paper",
                "profile": "",
                **{c.id: paper_row.values.get(c.id, "") for c in table.columns},
                "config": "",
                "metrics_files": "",
                "note": "; ".join(filter(None, ["as printed in the paper", paper_row.note])),
            }
        )
        if paper_row.recipe is None:
            continue
        rows.append(reproduced_row(config, table, paper_row, base))
    return header_of(table), rows


def reproduced_row(
    config: dict[str, Any], table: Table, paper_row: Row, base: dict[str, Any]
) -> dict[str, Any]:
    cells = row_cells(config, table, paper_row)
    reproduced: dict[str, Any] = {**base, "source": "reproduced", "profile": config["profile"]}
    reasons: list[tuple[str, str]] = []
    files: list[str] = []
    sources: dict[str, dict[str, str]] = {}  # column -> metrics file + key (for audit)
    metrics_of: dict[str, dict[str, Any]] = {}
    for column_id, c in cells.items():
        if c.variant is None:
            reproduced[column_id] = ""
            reasons.append((column_id, c.reason))
            continue
        path = paths.metrics_path(config, c.variant)
        metrics = metrics_of.setdefault(path, read_json(path))
        value = metric_value(metrics, c.metric)
        if value is None:  # NaN in the metrics JSON (BAaV keeps 0/0 adaptive IoUs as NaN)
            reproduced[column_id] = ""
            nan = metrics.get("n_adaptive_iou_nan", "some")
            reasons.append((column_id, f"undefined: {nan} sample(s) with a 0/0 adaptive IoU"))
            continue
        column = table.column(column_id)
        reproduced[column_id] = value if c.protocol == "calls" else scaled(table, column, value)
        files.append(path)
        sources[column_id] = {
            "metric": c.metric,
            "metrics_file": path,
            "protocol": c.protocol,
            "scale": 1.0 if c.protocol == "calls" else table.scale_of(column),
        }
    reproduced["config"] = _row_config(config, cells)
    reproduced["metrics_files"] = ";".join(dict.fromkeys(files))
    reproduced["note"] = "; ".join(
        filter(None, [_merge_reasons(reasons), _llm_fault_note(metrics_of.values())])
    )
    reproduced[SOURCES_KEY] = sources
    return reproduced


def _row_config(config: dict[str, Any], cells: dict[str, Cell]) -> str:
    """The row's own variants (one per distinct configuration among its cells)."""
    described = dict.fromkeys(c.variant.describe(config) for c in cells.values() if c.variant)
    return " | ".join(described)


def _llm_fault_note(metrics: Any) -> str:
    """LLM frames that fell back to the raw ALM text, and failed calls, over a row's files."""
    frames = sum(int(m.get("total_fallback_frames", 0) or 0) for m in metrics)
    failed = sum(int(m.get("total_failed_calls", 0) or 0) for m in metrics)
    if not frames and not failed:
        return ""
    return f"LLM fallback: {frames} frame(s) used the raw ALM text, {failed} failed call(s)"


def _merge_reasons(reasons: list[tuple[str, str]]) -> str:
    by_reason: dict[str, list[str]] = {}
    for column, reason in reasons:
        by_reason.setdefault(reason, []).append(column)
    return "; ".join(f"{', '.join(cols)} empty: {reason}" for reason, cols in by_reason.items())


def to_csv(header: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in header})
    return buf.getvalue()


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(config: dict[str, Any], table: Table, rows: list[dict[str, Any]]) -> str:
    labels = {c.id: c.label for c in table.columns} | dict(table.info_columns)
    shown = [
        "method",
        "source",
        *[i for i, _ in table.info_columns],
        *[c.id for c in table.columns],
        "note",
    ]
    lines = [
        f"# {table.caption}",
        "",
        f"Paper: {table.paper}. Reproduced rows: {profile_caption(config)}",
        "",
        "| " + " | ".join(_md_cell(labels.get(h, h)) for h in shown) + " |",
        "|" + "---|" * len(shown),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(h, "")) for h in shown) + " |")
    protocols = sorted({f"{c.label}: {c.protocol}" for c in table.columns if c.protocol})
    lines += ["", "Protocols: " + "; ".join(protocols) if protocols else ""]
    percent = [c.label for c in table.columns if table.scale_of(c) == 100]
    if percent:
        lines.append(f"Printed in percent (x100), as in the paper: {', '.join(percent)}.")
    if table.info_columns:
        lines.append("Flag columns: yes / no stand for the paper's check / cross marks.")
    if table.note:
        lines.append(f"Note: {table.note}")
    return "\n".join(lines).rstrip() + "\n"


def table_json(config: dict[str, Any], table: Table, rows: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = {
        row["method"]: {c.id: row[c.id] for c in table.columns if row.get(c.id, "") != ""}
        for row in rows
        if row["source"] == "reproduced"
    }
    return {"profile": config["profile"], "table": table.key, "rows": metrics}


def write_table(config: dict[str, Any], table: Table, out_csv: Path) -> None:
    header, rows = build_table(config, table)
    atomic_write_text(out_csv, to_csv(header, rows))
    atomic_write_text(out_csv.with_suffix(".md"), to_markdown(config, table, rows))
    atomic_write_json(out_csv.with_suffix(".json"), table_json(config, table, rows))
    write_report_record(config, table, out_csv, rows)


def report_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every reproduced cell: CSV row index, method, column, value and its metrics file + key."""
    return [
        {
            "row_index": index,
            "method": row["method"],
            "column": column,
            "value": row[column],
            **source,
        }
        for index, row in enumerate(rows)
        for column, source in row.get(SOURCES_KEY, {}).items()
    ]


def write_report_record(
    config: dict[str, Any], table: Table, out_csv: Path, rows: list[dict[str, Any]]
) -> None:
    """``<table>.csv.prov.json``: the report's cells -> metrics files, hashed, for ``avsbridge audit``."""
    from avsbridge.provenance.records import write_record

    cells = report_cells(rows)
    write_record(
        out_csv,
        rule="report_table",
        params={
            "paper": table.paper,
            "table": table.id,
            "profile": config["profile"],
            "results_dir": config["results_dir"],
        },
        inputs=[Path(p) for p in dict.fromkeys(c["metrics_file"] for c in cells)],
        extra={"cells": cells},
        siblings=[out_csv.with_suffix(".md"), out_csv.with_suffix(".json")],
    )


def fill_counts(config: dict[str, Any], table: Table) -> tuple[int, int, Counter[str]]:
    """(reproducible cells, filled on this profile, why the rest are empty)."""
    from avsbridge.experiments import table_cells

    total, filled, why = 0, 0, Counter()
    for c in table_cells(config, table):
        if not c.reproducible:
            continue
        total += 1
        if c.variant is not None:
            filled += 1
        else:
            why[c.reason] += 1
    return total, filled, why
