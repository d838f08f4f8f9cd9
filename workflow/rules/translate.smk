# Stage translate: LLM prompt translation (Table 4 strategies); weak_labels: OpenAVS*.


rule translate:
    input:
        alm=lambda w: [
            paths.path(config, "audio_text", **dict(w.items()), aprompt=p)
            for p in w.aprompts.split("+")
        ],
        # a ranking LLM's candidate names (options.candidates) decide its answers
        candidates=lambda w: llm_candidates(w),
    output:
        directory(paths.pattern(config, "translate")),
    log:
        stage_log("translate"),
    wildcard_constraints:
        alm="(?!weaklabel)[a-z0-9-]+",
    conda:
        stage_env("translate")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "translate", w.llm),
    params:
        code=stage_code("translate"),
        backend=lambda w: backend_param("translate", w.llm),
        cache_dir=LLM_CACHE,
        offline=config.get("llm_offline", False),
    script:
        "../scripts/translate.py"


rule weak_labels:
    input:
        lambda w: config["datasets"][base_dataset(w)].get("weak_labels", []),
    output:
        directory(paths.pattern(config, "weak_labels")),
    log:
        stage_log("weak_labels"),
    conda:
        stage_env("weak_labels")
    params:
        code=stage_code("weak_labels"),
        clips=lambda w: [c.id for c in shard_clips(w)],
    script:
        "../scripts/weak_labels.py"
