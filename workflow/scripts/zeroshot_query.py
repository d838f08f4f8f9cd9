"""Rule zeroshot_query: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("zeroshot_query", snakemake)  # noqa: F821
