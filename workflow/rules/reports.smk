# Reports: every table and figure of every paper (paper rows + reproduced rows),
# reports/index.md, and one target rule per artifact family (DVC drives those).


rule report_table:
    input:
        report_inputs,
    output:
        csv=report(
            f"{RD}/{{report}}.csv", caption="../report/table.rst", category="Tables"
        ),
        md=f"{RD}/{{report}}.md",
        json=f"{RD}/{{report}}.json",
        prov=report(
            f"{RD}/{{report}}.csv.prov.json",
            caption="../report/table_prov.rst",
            category="Provenance",
        ),
    log:
        f"{paths.logs_dir(config)}/reports/{{report}}.log",
    wildcard_constraints:
        report="|".join(TABLE_REPORTS),
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash(
            "avsbridge.reports", "avsbridge.experiments", "avsbridge.resources"
        ),
        profile=config["profile"],
    script:
        "../scripts/report_table.py"


rule report_figure:
    input:
        report_inputs,
    output:
        png=report(
            f"{RD}/{{report}}.png", caption="../report/figure.rst", category="Figures"
        ),
        csv=report(
            f"{RD}/{{report}}.csv", caption="../report/figure.rst", category="Figures"
        ),
    log:
        f"{paths.logs_dir(config)}/reports/{{report}}.log",
    wildcard_constraints:
        report="|".join(FIGURE_REPORTS),
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash(
            "avsbridge.reports", "avsbridge.experiments", "avsbridge.resources"
        ),
        profile=config["profile"],
    script:
        "../scripts/report_figure.py"


rule report_index:
    input:
        report_outputs(),
    output:
        report(
            paths.index_path(config), caption="../report/index.rst", category="Index"
        ),
    log:
        f"{paths.logs_dir(config)}/reports/index.log",
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash(
            "avsbridge.reports", "avsbridge.experiments", "avsbridge.resources"
        ),
        profile=config["profile"],
    script:
        "../scripts/report_index.py"


# Artifact-family targets: one DVC stage drives each (dvc.yaml).
for _family in stages.families():

    rule:
        name:
            f"{_family}_outputs"
        input:
            family_outputs(_family),
