"""Rule zeroshot_image: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("zeroshot_image", snakemake)  # noqa: F821
