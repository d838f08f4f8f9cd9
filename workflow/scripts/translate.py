"""Rule translate: ALM text of one shard -> object names per frame."""

from pathlib import Path

from avsbridge.pipeline import setup_logging, translate_job

setup_logging(snakemake.log[0])  # noqa: F821
w = snakemake.wildcards  # noqa: F821
translate_job(snakemake.config, w.dataset, w.alm, w.aprompts, w.llm, w.strategy, w.shard,  # noqa: F821
              list(map(Path, snakemake.input.alm)), Path(snakemake.output[0]),  # noqa: F821
              dict(snakemake.params.items()))  # noqa: F821
