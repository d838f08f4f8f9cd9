# Stages text_cues (TeSO: cues per frame from the scene descriptions: CoT few-shot, one-shot,
# spaCy nouns) and cue_recognition (REC#1 of TeSO Table 3 over all shards of a dataset).


rule text_cues:
    input:
        scenes=lambda w: paths.path(
            config,
            "scene_description",
            dataset=w.dataset,
            scene_description=w.scene_description,
            shard=w.shard,
        ),
    output:
        directory(paths.pattern(config, "text_cues")),
    log:
        stage_log("text_cues"),
    conda:
        stage_env("text_cues")
    resources:
        gpu=lambda w: stages.gpu_count(config, "text_cues"),
        mem_mb=lambda w: stages.mem_mb(config, "text_cues"),
    params:
        code=stage_code("text_cues"),
        backend=lambda w: backend_param("text_cues"),
        cache_dir=LLM_CACHE,
        offline=config.get("llm_offline", False),
        text_cues=config.get("text_cues", {}),
    script:
        "../scripts/text_cues.py"


rule cue_recognition:
    input:
        cues=lambda w: variant_shards(w, "text_cues"),
        metadata=dataset_metadata,
    output:
        paths.pattern(config, "cue_recognition"),
    log:
        stage_log("cue_recognition"),
    conda:
        stage_env("cue_recognition")
    resources:
        mem_mb=stages.mem_mb(config, "cue_recognition"),
    params:
        code=stage_code("cue_recognition"),
    script:
        "../scripts/cue_recognition.py"
