"""Rule train: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("train", snakemake)  # noqa: F821
