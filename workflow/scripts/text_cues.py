"""Rule text_cues: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("text_cues", snakemake)  # noqa: F821
