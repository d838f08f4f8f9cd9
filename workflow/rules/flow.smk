# Stage flow: optical flow per consecutive frame pair (.flo + preview) and the SSP masks
# (O^T, grayscale, M_O; M_Pre and the post-mask target on training splits only).


rule flow:
    input:
        metadata=dataset_metadata,
        checked=lambda w: paths.path(config, "data_check", dataset=base_dataset(w)),
    output:
        directory(paths.pattern(config, "flow")),
    log:
        stage_log("flow"),
    conda:
        stage_env("flow")
    resources:
        gpu=lambda w: stages.gpu_count(config, "flow"),
        mem_mb=lambda w: stages.mem_mb(config, "flow"),
    params:
        code=stage_code("flow"),
        backend=lambda w: backend_param("flow"),
        flow=config.get("flow", {}),
    script:
        "../scripts/flow.py"
