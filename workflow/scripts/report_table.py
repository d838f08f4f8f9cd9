"""Rule report_table: metrics -> one paper table (.csv/.md/.json + provenance)."""

from avsbridge.reports.jobs import report_table_job

report_table_job(snakemake)  # noqa: F821
