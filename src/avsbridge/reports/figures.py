"""Any paper figure that sweeps one variant field (OpenAVS Figure 5: box threshold).

The figure's data (``x``: the swept field and the config list of its values;
columns: the plotted series) comes from the paper file; each point is one
cell, so an empty point says why like a table cell does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge import paths
from avsbridge.experiments import figure_cells
from avsbridge.io import atomic_path, atomic_write_text, read_json
from avsbridge.papers import Table
from avsbridge.reports.tables import DECIMALS, profile_caption, row_label, to_csv


def figure_header(table: Table) -> list[str]:
    metrics = list(dict.fromkeys(c.metric for c in table.columns if c.metric))
    return [
        "method",
        "dataset",
        str(table.x["id"]),
        *metrics,
        "source",
        "profile",
        "metrics_file",
        "note",
    ]


def figure_rows(config: dict[str, Any], table: Table) -> list[dict[str, Any]]:
    """One CSV row per (series row, dataset, x): the metrics of that point."""
    x_id = str(table.x["id"])
    points: dict[tuple[str, str, Any], dict[str, Any]] = {}
    for row, column, x, c in figure_cells(config, table):
        key = (row_label(table, row), str(column.dataset), x)
        point = points.setdefault(
            key,
            {
                "method": key[0],
                "dataset": key[1],
                x_id: x,
                "source": "reproduced",
                "profile": config["profile"],
                "metrics_file": "",
                "note": "",
            },
        )
        if c.variant is None:
            point[str(column.metric)] = ""
            point["note"] = c.reason
            continue
        path = paths.metrics_path(config, c.variant)
        value = float(read_json(path)[c.metric]) * table.scale_of(column)
        point[str(column.metric)] = round(value, DECIMALS)
        point["metrics_file"] = path
    return list(points.values())


def write_figure(config: dict[str, Any], table: Table, out_png: Path, out_csv: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header = figure_header(table)
    rows = figure_rows(config, table)
    atomic_write_text(out_csv, to_csv(header, rows))
    x_id = str(table.x["id"])
    metrics = header[3 : header.index("source")]
    labels = {c.metric: c.label.split(" ", 1)[-1] for c in table.columns}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for method, dataset in dict.fromkeys((r["method"], r["dataset"]) for r in rows):
            pts = [
                (r[x_id], r[metric])
                for r in rows
                if (r["method"], r["dataset"]) == (method, dataset) and r.get(metric, "") != ""
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=f"{method} {dataset.upper()}")
        ax.set_xlabel(str(table.x.get("label", x_id)))
        ax.set_ylabel(labels.get(metric, metric))
        ax.set_ylim(0, table.scale)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(
        f"{table.caption.split(':')[0]} (reproduced: {profile_caption(config)})", fontsize=8
    )
    fig.set_layout_engine("constrained")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
