"""Rule pseudo_labels: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("pseudo_labels", snakemake)  # noqa: F821
