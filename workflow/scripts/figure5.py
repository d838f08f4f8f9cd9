"""Rule figure5: box-threshold sweep metrics -> reports/figure5.png/.csv."""

from pathlib import Path

from avsbridge.pipeline import setup_logging
from avsbridge.reports.figures import write_figure5

setup_logging(snakemake.log[0])  # noqa: F821
write_figure5(snakemake.config, Path(snakemake.output.png), Path(snakemake.output.csv))  # noqa: F821
