# avsbridge: language-bridged audio-visual segmentation as a Snakemake DAG.
#   snakemake reports/table1.csv --cores 8        # demo profile (default)
#   snakemake --cores 8                           # every table of the four papers
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


# A --configfile is a whole profile (config/paper.yaml): it replaces the demo profile
# instead of being merged into it, so no demo key leaks into a paper run.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data_check.smk"
include: "workflow/rules/audio_text.smk"
include: "workflow/rules/translate.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/mllm.smk"
include: "workflow/rules/cues.smk"
include: "workflow/rules/zeroshot.smk"
include: "workflow/rules/reports.smk"


rule all:
    default_target: True
    input:
        report_outputs(),
        paths.index_path(config),
        extra_family_outputs(),
