"""Rule audio_features: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("audio_features", snakemake)  # noqa: F821
