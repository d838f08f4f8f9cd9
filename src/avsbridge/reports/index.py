"""``reports/index.md``: every table of every paper, how much of it this profile fills, and why not the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge import paths
from avsbridge.experiments import reports
from avsbridge.io import atomic_write_text
from avsbridge.papers import load_paper
from avsbridge.reports.tables import fill_counts, profile_caption


def index_markdown(config: dict[str, Any]) -> str:
    lines = [
        "# Reproduced tables and figures",
        "",
        f"Profile: {profile_caption(config)}",
        "",
        "| paper | table | report | reproducible cells | filled | empty because |",
        "|---|---|---|---|---|---|",
    ]
    total_all = filled_all = 0
    for table in reports():
        total, filled, why = fill_counts(config, table)
        total_all, filled_all = total_all + total, filled_all + filled
        stem = paths.report_stem(config, table.paper, table.id)
        link = Path(stem).relative_to(paths.reports_dir(config)).as_posix() + ".csv"
        reasons = "; ".join(f"{n} x {reason}" for reason, n in why.most_common())
        caption = table.caption.split(":")[0].split(".")[0]
        lines.append(
            f"| {load_paper(table.paper).id} | {caption} | [{link}]({link}) | {total} | "
            f"{filled} | {reasons.replace('|', '/') or '-'} |"
        )
    lines += ["", f"Filled {filled_all} of {total_all} reproducible cells on this profile."]
    return "\n".join(lines) + "\n"


def write_index(config: dict[str, Any], out: Path) -> None:
    atomic_write_text(out, index_markdown(config))
