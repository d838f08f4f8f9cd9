"""Rule ris: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("ris", snakemake)  # noqa: F821
