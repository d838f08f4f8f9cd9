"""Rule audio_text: one shard of clips -> per-frame ALM text."""

from pathlib import Path

from avsbridge.pipeline import audio_text_job, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
w = snakemake.wildcards  # noqa: F821
audio_text_job(snakemake.config, w.dataset, w.alm, w.aprompt, w.shard,  # noqa: F821
               Path(snakemake.output[0]), dict(snakemake.params.items()))  # noqa: F821
