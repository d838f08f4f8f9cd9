# Stage audio_text: per-frame audio windows -> text (ALM), one job per shard of clips.


rule audio_text:
    input:
        audio=shard_audio,
    output:
        directory(paths.pattern(config, "audio_text")),
    log:
        stage_log("audio_text"),
    conda:
        stage_env("audio_text")
    resources:
        gpu=stages.gpu_count(config, "audio_text"),
    params:
        code=stage_code("audio_text"),
        backend=stages.backend_spec(config, "audio_text"),
        prompt_key=lambda w: w.aprompt,
    script:
        "../scripts/audio_text.py"
