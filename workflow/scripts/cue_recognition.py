"""Rule cue_recognition: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("cue_recognition", snakemake)  # noqa: F821
