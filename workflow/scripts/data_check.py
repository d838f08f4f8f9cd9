"""Rule data_check: read every frame, mask and wav of a dataset once -> report JSON (or fail)."""

from pathlib import Path

from avsbridge.data.check import data_check_job
from avsbridge.pipeline import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
data_check_job(snakemake.config, snakemake.wildcards.dataset, Path(snakemake.output[0]),  # noqa: F821
               workers=snakemake.threads * 4)  # noqa: F821
