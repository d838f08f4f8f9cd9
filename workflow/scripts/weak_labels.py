"""Rule weak_labels: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("weak_labels", snakemake)  # noqa: F821
