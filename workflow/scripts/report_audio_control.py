"""Rule report_audio_control: every listed method under normal / muted / noise audio."""

from avsbridge.reports.jobs import report_audio_control_job

report_audio_control_job(snakemake)  # noqa: F821
