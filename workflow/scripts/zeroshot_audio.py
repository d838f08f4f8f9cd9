"""Rule zeroshot_audio: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("zeroshot_audio", snakemake)  # noqa: F821
