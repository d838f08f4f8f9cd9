"""Rule translate: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("translate", snakemake)  # noqa: F821
