"""Rule report_index: reports/index.md, every table of every paper and how much is filled."""

from avsbridge.reports.jobs import report_index_job

report_index_job(snakemake)  # noqa: F821
