"""Rule report_table: metrics -> reports/{table}.csv/.md/.json."""

from pathlib import Path

from avsbridge.pipeline import setup_logging
from avsbridge.reports.tables import write_table

setup_logging(snakemake.log[0])  # noqa: F821
write_table(snakemake.config, snakemake.wildcards.report, Path(snakemake.output.csv))  # noqa: F821
