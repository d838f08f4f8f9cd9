"""Rule evaluate_st: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("evaluate_st", snakemake)  # noqa: F821
