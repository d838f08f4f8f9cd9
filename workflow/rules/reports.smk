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


rule report_audio_control:
    input:
        lambda w: [
            paths.metrics_path(config, v) for v in audio_control_variants(config)
        ],
    output:
        csv=report(
            paths.audio_control_path(config),
            caption="../report/audio_control.rst",
            category="Tables",
        ),
        md=paths.audio_control_path(config).removesuffix(".csv") + ".md",
        json=paths.audio_control_path(config).removesuffix(".csv") + ".json",
        prov=paths.audio_control_path(config) + ".prov.json",
    log:
        f"{paths.logs_dir(config)}/reports/audio_control.log",
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash(
            "avsbridge.reports", "avsbridge.experiments", "avsbridge.resources"
        ),
        profile=config["profile"],
        audio_control=config.get("audio_control", {}),
    script:
        "../scripts/report_audio_control.py"


rule report_training_curves:
    input:
        lambda w: checkpoint_folders(),
    output:
        report(
            f"{RD}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
        ),
    log:
        f"{paths.logs_dir(config)}/reports/training_curves.log",
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash("avsbridge.train.curves"),
    script:
        "../scripts/report_training_curves.py"


rule report_flow_previews:
    input:
        # the flow shard folders of the chosen clips (metadata decides which: no media I/O)
        lambda w: flow_previews.preview_inputs(config),
    output:
        png=report(
            paths.flow_previews_path(config),
            caption="../report/flow_previews.rst",
            category="Optical flow",
        ),
        json=paths.flow_previews_path(config).removesuffix(".png") + ".json",
    log:
        f"{paths.logs_dir(config)}/reports/flow_previews.log",
    conda:
        "../../envs/flow.yaml"
    params:
        code=code_hash("avsbridge.reports", "avsbridge.flow.artifacts"),
        profile=config["profile"],
        clips=lambda w: flow_previews.preview_count(config),
        previews=config.get("flow", {}).get("previews", True),
    script:
        "../scripts/report_flow_previews.py"


rule report_index:
    input:
        # the index counts cells from the paper files and the config (it reads no
        # metrics): its inputs are the split lists, so a pulled index stays current
        [pipeline.metadata_file(config, d) for d in config["datasets"]],
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
