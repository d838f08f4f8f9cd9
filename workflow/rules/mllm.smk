# Stages mllm_answers (SSP: A1/A2 per clip for Q1 variants a-d) and scene_description
# (TeSO: a dense description per frame). Every model call goes through the LLM call cache.


rule mllm_answers:
    input:
        metadata=dataset_metadata,
        checked=lambda w: paths.path(config, "data_check", dataset=base_dataset(w)),
    output:
        directory(paths.pattern(config, "mllm_answers")),
    log:
        stage_log("mllm_answers"),
    conda:
        stage_env("mllm_answers")
    resources:
        gpu=lambda w: stages.gpu_count(config, "mllm_answers"),
        mem_mb=lambda w: stages.mem_mb(config, "mllm_answers"),
    params:
        code=stage_code("mllm_answers"),
        backend=lambda w: backend_param("mllm_answers"),
        cache_dir=LLM_CACHE,
        offline=config.get("llm_offline", False),
        mllm_answers=config.get("mllm_answers", {}),
    script:
        "../scripts/mllm_answers.py"


rule scene_description:
    input:
        metadata=dataset_metadata,
        checked=lambda w: paths.path(config, "data_check", dataset=base_dataset(w)),
    output:
        directory(paths.pattern(config, "scene_description")),
    log:
        stage_log("scene_description"),
    conda:
        stage_env("scene_description")
    resources:
        gpu=lambda w: stages.gpu_count(config, "scene_description"),
        mem_mb=lambda w: stages.mem_mb(config, "scene_description"),
    params:
        code=stage_code("scene_description"),
        backend=lambda w: backend_param("scene_description"),
        cache_dir=LLM_CACHE,
        offline=config.get("llm_offline", False),
    script:
        "../scripts/scene_description.py"
