# Stage data_check: every frame, mask and wav of a dataset read once, before any model runs
# (a bad GT found by evaluate after hours of GPU work is the failure this prevents).


rule data_check:
    input:
        metadata=dataset_metadata,
    output:
        paths.pattern(config, "data_check"),
    log:
        stage_log("data_check"),
    conda:
        stage_env("data_check")
    threads: 2
    resources:
        mem_mb=stages.mem_mb(config, "data_check"),
    params:
        code=stage_code("data_check"),
        workers=8,
    script:
        "../scripts/data_check.py"
