"""Rule audio_text: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("audio_text", snakemake)  # noqa: F821
