# Stage segment: text -> masks with a VFM, per shard and box threshold.


rule segment:
    input:
        text=lambda w: paths.path(config, "translate", **dict(w.items())),
        metadata=dataset_metadata,
        checked=lambda w: paths.path(config, "data_check", dataset=base_dataset(w)),
    output:
        directory(paths.pattern(config, "segment")),
    log:
        stage_log("segment"),
    conda:
        stage_env("segment")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "segment", w.vfm),
        gpu=lambda w: stages.gpu_count(config, "segment", w.vfm),
    params:
        code=stage_code("segment"),
        backend=lambda w: backend_param("segment", w.vfm, base_dataset(w)),
        text_threshold=config["vfm"]["text_threshold"],
        # lossy embedding storage changes masks: a change re-runs them (dir/budget do not)
        vfm_cache_dtype=(config.get("vfm_cache") or {}).get("embedding_dtype", "same"),
    script:
        "../scripts/segment.py"
