# Stage 7: the paper's tables (paper rows + reproduced rows) and Figure 5.


rule report_table:
    input:
        lambda w: [
            v.metrics_path(R) for v in experiments.report_variants(config, w.report)
        ],
    output:
        csv=report(
            "reports/{report}.csv", caption="../report/table.rst", category="Tables"
        ),
        md="reports/{report}.md",
        json="reports/{report}.json",
        prov=report(
            "reports/{report}.csv.prov.json",
            caption="../report/table_prov.rst",
            category="Provenance",
        ),
    log:
        "logs/reports/{report}.log",
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash("avsbridge.reports", "avsbridge.experiments"),
        profile=config["profile"],
    script:
        "../scripts/report_table.py"


rule figure5:
    input:
        lambda w: [
            v.metrics_path(R) for v in experiments.report_variants(config, "figure5")
        ],
    output:
        png=report(
            "reports/figure5.png", caption="../report/figure5.rst", category="Figures"
        ),
        csv=report(
            "reports/figure5.csv", caption="../report/figure5.rst", category="Figures"
        ),
    log:
        "logs/reports/figure5.log",
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash("avsbridge.reports", "avsbridge.experiments"),
        profile=config["profile"],
    script:
        "../scripts/figure5.py"


# Artifact-family targets: one DVC stage drives each (dvc.yaml).
rule alm_outputs:
    input:
        lambda w: family_outputs("alm"),


rule text_outputs:
    input:
        lambda w: family_outputs("text"),


rule mask_outputs:
    input:
        lambda w: family_outputs("masks"),


rule metric_outputs:
    input:
        lambda w: family_outputs("metrics"),
