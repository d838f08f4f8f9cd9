"""Build a paper table: the paper's rows (source=paper) and reproduced rows.

A reproduced cell is read from the metrics file of the variant that produces
it; a cell this profile cannot compute stays empty and the row's ``note`` says
why. Numbers are never invented: every value comes from a metrics file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from avsbridge.experiments import paper_tables, row_cells
from avsbridge.io import atomic_write_json, atomic_write_text, read_json

# Private row key: which metrics file and key fill each reproduced cell (not a CSV column).
SOURCES_KEY = "_sources"


def _config_summary(config: dict[str, Any]) -> str:
    b = config["backends"]
    vfm = b["vfm"]["sam"]
    return (
        f"alm={b['alm']['name']}; llm={b['llm']['name']}; vfm={vfm['name']}; "
        f"strategy={config['llm']['strategy']}; box_threshold={config['vfm']['box_threshold']}"
    )


def build_table(config: dict[str, Any], table: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of ``table`` as dicts, with the header order."""
    spec = paper_tables()[table]
    columns: list[str] = spec["columns"]
    info: list[str] = spec.get("info_columns", [])
    header = [
        "table",
        "method",
        "source",
        "profile",
        *info,
        *columns,
        "config",
        "metrics_files",
        "note",
    ]
    rows: list[dict[str, Any]] = []
    results_dir = config["results_dir"]
    for paper_row in spec["rows"]:
        base = {
            "table": table,
            "method": paper_row["method"],
            **{k: paper_row.get(k, "") for k in info},
        }
        rows.append(
            {
                **base,
                "source": "paper",
                "profile": "",
                **{c: paper_row.get(c, "") for c in columns},
                "config": "",
                "metrics_files": "",
                "note": "as printed in the paper",
            }
        )
        if "reproduce" not in paper_row:
            continue
        reproduced: dict[str, Any] = {
            **base,
            "source": "reproduced",
            "profile": config["profile"],
            "config": _config_summary(config),
        }
        reasons: list[str] = []
        files: list[str] = []
        sources: dict[str, dict[str, str]] = {}  # column -> metrics file + key (for audit)
        llm_faults: dict[str, dict[str, Any]] = {}  # metrics file -> its metrics
        for column, cell in row_cells(config, table, paper_row).items():
            if cell.variant is None:
                reproduced[column] = ""
                reasons.append(f"{column}: {cell.reason}")
                continue
            path = cell.variant.metrics_path(results_dir)
            metrics = read_json(path)
            value = metrics[cell.metric]
            reproduced[column] = round(float(value), 4)
            files.append(path)
            llm_faults[path] = metrics
            sources[column] = {"metric": cell.metric, "metrics_file": path}
        reproduced["metrics_files"] = ";".join(dict.fromkeys(files))
        reproduced["note"] = "; ".join(
            filter(None, [_merge_reasons(reasons), _llm_fault_note(llm_faults.values())])
        )
        reproduced[SOURCES_KEY] = sources
        rows.append(reproduced)
    return header, rows


def _llm_fault_note(metrics: Any) -> str:
    """LLM frames that fell back to the raw ALM text, and failed calls, over a row's files."""
    frames = sum(int(m.get("total_fallback_frames", 0) or 0) for m in metrics)
    failed = sum(int(m.get("total_failed_calls", 0) or 0) for m in metrics)
    if not frames and not failed:
        return ""
    return f"LLM fallback: {frames} frame(s) used the raw ALM text, {failed} failed call(s)"


def _merge_reasons(reasons: list[str]) -> str:
    by_reason: dict[str, list[str]] = {}
    for item in reasons:
        column, _, reason = item.partition(": ")
        by_reason.setdefault(reason, []).append(column)
    return "; ".join(f"{', '.join(cols)} empty: {reason}" for reason, cols in by_reason.items())


def to_csv(header: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in header})
    return buf.getvalue()


def to_markdown(title: str, header: list[str], rows: list[dict[str, Any]]) -> str:
    shown = [h for h in header if h not in ("table", "metrics_files", "config")]
    lines = [f"# {title}", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(h, "")) for h in shown) + " |")
    return "\n".join(lines) + "\n"


def write_table(config: dict[str, Any], table: str, out_csv: Path) -> None:
    header, rows = build_table(config, table)
    title = paper_tables()[table]["title"]
    atomic_write_text(out_csv, to_csv(header, rows))
    atomic_write_text(out_csv.with_suffix(".md"), to_markdown(title, header, rows))
    metrics = {
        row["method"]: {k: row[k] for k in paper_tables()[table]["columns"] if row.get(k, "") != ""}
        for row in rows
        if row["source"] == "reproduced"
    }
    atomic_write_json(out_csv.with_suffix(".json"), {"profile": config["profile"], "rows": metrics})
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
    config: dict[str, Any], table: str, out_csv: Path, rows: list[dict[str, Any]]
) -> None:
    """``<table>.csv.prov.json``: the report's cells -> metrics files, hashed, for ``avsbridge audit``."""
    from avsbridge.provenance.records import write_record

    cells = report_cells(rows)
    write_record(
        out_csv,
        rule="report_table",
        params={"table": table, "profile": config["profile"], "results_dir": config["results_dir"]},
        inputs=[Path(p) for p in dict.fromkeys(c["metrics_file"] for c in cells)],
        extra={"cells": cells},
        siblings=[out_csv.with_suffix(".md"), out_csv.with_suffix(".json")],
    )
