"""Figure 5: box-threshold sweep of mIoU and F-score on S4 and MS3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge.experiments import figure5_variants, paper_tables
from avsbridge.io import atomic_path, atomic_write_text, read_json
from avsbridge.reports.tables import to_csv

FIG5_HEADER = [
    "dataset",
    "box_threshold",
    "miou",
    "fscore",
    "fscore_pooled",
    "source",
    "profile",
    "metrics_file",
    "note",
]


def figure5_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for variant in figure5_variants(config):
        path = variant.metrics_path(config["results_dir"])
        m = read_json(path)
        rows.append(
            {
                "dataset": variant.dataset,
                "box_threshold": variant.box_threshold,
                "miou": round(m["miou"], 4),
                "fscore": round(m["fscore"], 4),
                "fscore_pooled": round(m["fscore_pooled"], 4),
                "source": "reproduced",
                "profile": config["profile"],
                "metrics_file": path,
                "note": "",
            }
        )
    return rows


def write_figure5(config: dict[str, Any], out_png: Path, out_csv: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = figure5_rows(config)
    atomic_write_text(out_csv, to_csv(FIG5_HEADER, rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for ax, metric, label in ((axes[0], "miou", "mIoU"), (axes[1], "fscore", "F-score")):
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            pts = [(r["box_threshold"], r[metric]) for r in rows if r["dataset"] == dataset]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=dataset.upper())
        ax.set_xlabel("box threshold")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"Figure 5 (reproduced, profile {config['profile']}): "
        f"{paper_tables()['figure5']['note'].split(':')[0]}",
        fontsize=8,
    )
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
