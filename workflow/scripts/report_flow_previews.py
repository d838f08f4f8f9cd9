"""Rule report_flow_previews: a few clips' RGB frame, flow colour and M_O side by side."""

from avsbridge.reports.jobs import report_flow_previews_job

report_flow_previews_job(snakemake)  # noqa: F821
