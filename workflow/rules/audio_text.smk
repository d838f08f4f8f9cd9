# Stage 1-2: per-frame audio windows -> text (ALM), one job per shard of clips.


rule audio_text:
    input:
        audio=shard_audio,
    output:
        directory(f"{R}/alm/{{dataset}}/{{alm}}/{{aprompt}}/{{shard}}"),
    log:
        "logs/audio_text/{dataset}/{alm}/{aprompt}/{shard}.log",
    conda:
        "../../envs/audio_text.yaml"
    resources:
        gpu=lambda w: gpu_for(w.alm),
    params:
        code=code_hash("avsbridge.audio_text", "avsbridge.pipeline"),
        backend=lambda w: backend_of("alm"),
        prompt_key=lambda w: w.aprompt,
    script:
        "../scripts/audio_text.py"
