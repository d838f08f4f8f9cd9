"""Rule weak_labels: OpenAVS* prompts from clip-level labels."""

from pathlib import Path

from avsbridge.pipeline import setup_logging, translate_job

setup_logging(snakemake.log[0])  # noqa: F821
w = snakemake.wildcards  # noqa: F821
translate_job(snakemake.config, w.dataset, "weaklabel", "label", "none", "none", w.shard,  # noqa: F821
              [], Path(snakemake.output[0]), dict(snakemake.params.items()))  # noqa: F821
