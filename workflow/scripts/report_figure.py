"""Rule report_figure: metrics of a sweep -> one paper figure (.png/.csv)."""

from avsbridge.reports.jobs import report_figure_job

report_figure_job(snakemake)  # noqa: F821
