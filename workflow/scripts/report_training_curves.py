"""Rule report_training_curves: every trained student's loss and validation mIoU per epoch."""

from avsbridge.reports.jobs import report_training_curves_job

report_training_curves_job(snakemake)  # noqa: F821
