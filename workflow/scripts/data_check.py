"""Rule data_check: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("data_check", snakemake)  # noqa: F821
