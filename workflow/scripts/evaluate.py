"""Rule evaluate: masks of every shard of a variant -> metrics JSON."""

from pathlib import Path

from avsbridge.pipeline import evaluate_job, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
evaluate_job(snakemake.config, snakemake.wildcards.dataset,  # noqa: F821
             list(map(Path, snakemake.input.masks)), list(map(Path, snakemake.input.text)),  # noqa: F821
             Path(snakemake.output[0]), dict(snakemake.params.items()))  # noqa: F821
