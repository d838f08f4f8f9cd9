"""Rule evaluate_zeroshot: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("evaluate_zeroshot", snakemake)  # noqa: F821
