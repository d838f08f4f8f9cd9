# Stage 7: the paper's tables (paper rows + reproduced rows) and Figure 5.


rule report_table:
    input:
        lambda w: [
            v.metrics_path(R) for v in experiments.report_variants(config, w.report)
        ],
    output:
        csv=report("reports/{report}.csv", category="Tables"),
        md="reports/{report}.md",
        json="reports/{report}.json",
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
        png=report("reports/figure5.png", category="Figures"),
        csv="reports/figure5.csv",
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
def family_outputs(family):
    variants = dict.fromkeys(
        v for r in experiments.REPORTS for v in experiments.report_variants(config, r)
    )
    paths = []
    for v in variants:
        shards = pipeline.shard_names(config, v.dataset)
        if family == "alm" and v.alm != experiments.WEAK_LABEL:
            paths += [
                f"{R}/alm/{v.dataset}/{v.alm}/{p}/{s}"
                for p in v.aprompts
                for s in shards
            ]
        elif family == "text":
            paths += [f"{R}/text/{v.dataset}/{v.text_key}/{s}" for s in shards]
        elif family == "masks":
            paths += [
                f"{R}/masks/{v.dataset}/{v.text_key}/{v.vfm}/{v.threshold_key}/{s}"
                for s in shards
            ]
        elif family == "metrics":
            paths.append(v.metrics_path(R))
    return list(dict.fromkeys(paths))


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
