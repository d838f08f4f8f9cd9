# Stage evaluate: official AVSBench protocol (and the batch-independent F) per variant.


rule evaluate:
    input:
        masks=lambda w: variant_shards(w, "segment"),
        text=lambda w: variant_shards(w, "translate"),
        metadata=dataset_metadata,
    output:
        paths.pattern(config, "evaluate"),
    log:
        stage_log("evaluate"),
    conda:
        stage_env("evaluate")
    resources:
        mem_mb=stages.mem_mb(config, "evaluate"),
    params:
        code=stage_code("evaluate"),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/evaluate.py"
