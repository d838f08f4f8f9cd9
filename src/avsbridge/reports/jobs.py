"""The report rules' entries: a Snakemake job -> one report writer call, traceback logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avsbridge.experiments import report_tables
from avsbridge.papers import Table


def table_of(config: dict[str, Any], report: str) -> Table:
    """The paper table behind a report wildcard (``table1``, ``baav/table2``)."""
    return report_tables(config)[report]


def _run(smk: Any, write: Callable[[], None]) -> None:
    from avsbridge.pipeline import setup_logging

    setup_logging(smk.log[0] if smk.log else None)
    try:
        write()
    except BaseException:
        logging.getLogger("avsbridge.reports").exception("report job failed")
        raise


def report_table_job(smk: Any) -> None:
    from avsbridge.reports.tables import write_table

    table = table_of(smk.config, smk.wildcards.report)
    _run(smk, lambda: write_table(smk.config, table, Path(smk.output.csv)))


def report_figure_job(smk: Any) -> None:
    from avsbridge.reports.figures import write_figure

    table = table_of(smk.config, smk.wildcards.report)
    _run(smk, lambda: write_figure(smk.config, table, Path(smk.output.png), Path(smk.output.csv)))


def report_index_job(smk: Any) -> None:
    from avsbridge.reports.index import write_index

    _run(smk, lambda: write_index(smk.config, Path(smk.output[0])))


def report_audio_control_job(smk: Any) -> None:
    from avsbridge.reports.audio_control import write_audio_control

    _run(smk, lambda: write_audio_control(smk.config, Path(smk.output.csv)))


def report_training_curves_job(smk: Any) -> None:
    """One figure: train loss and validation mIoU per epoch of every trained student."""
    from avsbridge.train.curves import plot_training_curves

    folders = {"/".join(Path(p).parts[-8:]): Path(p) for p in smk.input}
    title = (
        "OpenAVS-ST students" if folders else "OpenAVS-ST: no student is trained on this profile"
    )
    _run(smk, lambda: plot_training_curves(folders, Path(smk.output[0]), title))


def report_flow_previews_job(smk: Any) -> None:
    """A few clips' frame, flow colour and M_O side by side, from the flow stage's files."""
    from avsbridge.reports.flow_previews import write_flow_previews

    _run(
        smk,
        lambda: write_flow_previews(smk.config, Path(smk.output.png), Path(smk.output.json)),
    )
