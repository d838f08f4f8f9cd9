# Stage audio_text: per-frame audio windows -> text (ALM), one job per shard of clips.


rule audio_text:
    input:
        audio=shard_audio,
        checked=lambda w: paths.path(config, "data_check", dataset=base_dataset(w)),
    output:
        directory(paths.pattern(config, "audio_text")),
    log:
        stage_log("audio_text"),
    conda:
        stage_env("audio_text")
    resources:
        mem_mb=stages.mem_mb(config, "audio_text"),
        gpu=stages.gpu_count(config, "audio_text"),
    params:
        code=stage_code("audio_text"),
        backend=lambda w: backend_param("audio_text", None, base_dataset(w)),
        prompt_key=lambda w: w.aprompt,
    script:
        "../scripts/audio_text.py"
