"""Rule mllm_answers: one call into the package (avsbridge.stages declares the job)."""

from avsbridge.stages import run_stage

run_stage("mllm_answers", snakemake)  # noqa: F821
