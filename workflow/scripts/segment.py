"""Rule segment: prompts of one shard -> masks + boxes per frame."""

from pathlib import Path

from avsbridge.pipeline import segment_job, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
w = snakemake.wildcards  # noqa: F821
segment_job(snakemake.config, w.dataset, w.vfm, w.thr, w.shard, Path(snakemake.input.text),  # noqa: F821
            Path(snakemake.output[0]), dict(snakemake.params.items()))  # noqa: F821
