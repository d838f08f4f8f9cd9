"""Rule scene_description: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("scene_description", snakemake)  # noqa: F821
