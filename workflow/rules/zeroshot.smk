# BAaV zero-shot chain: audio tags/caption and image caption cached per sample, a strategy
# turns them into a query, a RIS model segments, evaluate_zeroshot scores (zeroshot-baav).
# Resources are per-job lambdas: a profile without zero-shot backends still parses.
rule zeroshot_audio:
    input:
        audio=lambda w: sorted({str(s.audio) for s in zs_shard(w)}),
        listed=dataset_metadata,
        checked=lambda w: paths.path(config, "data_check", dataset=w.dataset),
    output:
        directory(paths.pattern(config, "zeroshot_audio")),
    log:
        stage_log("zeroshot_audio"),
    wildcard_constraints:
        audio_model="(?!none$)[a-z0-9-]+",
    conda:
        stage_env("zeroshot_audio")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "zeroshot_audio"),
        gpu=lambda w: stages.gpu_count(config, "zeroshot_audio"),
    params:
        code=stage_code("zeroshot_audio"),
        backend=lambda w: stages.backend_spec(
            config, "zeroshot_audio", dataset=w.dataset
        ),
    script:
        "../scripts/zeroshot_audio.py"


rule zeroshot_image:
    input:
        listed=dataset_metadata,
        checked=lambda w: paths.path(config, "data_check", dataset=w.dataset),
    output:
        directory(paths.pattern(config, "zeroshot_image")),
    log:
        stage_log("zeroshot_image"),
    wildcard_constraints:
        image_model="(?!none$)[a-z0-9-]+",
    conda:
        stage_env("zeroshot_image")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "zeroshot_image"),
        gpu=lambda w: stages.gpu_count(config, "zeroshot_image"),
    params:
        code=stage_code("zeroshot_image"),
        backend=lambda w: stages.backend_spec(
            config, "zeroshot_image", dataset=w.dataset
        ),
    script:
        "../scripts/zeroshot_image.py"


rule zeroshot_query:
    input:
        unpack(zs_query_inputs),
    output:
        directory(paths.pattern(config, "zeroshot_query")),
    log:
        stage_log("zeroshot_query"),
    wildcard_constraints:
        audio_model="[a-z0-9-]+",
        image_model="[a-z0-9-]+",
        matcher="[a-z0-9-]+",
        query="|".join(ZS_STRATEGIES),
    conda:
        stage_env("zeroshot_query")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "zeroshot_query"),
        gpu=lambda w: stages.gpu_count(config, "zeroshot_query"),
    params:
        code=stage_code("zeroshot_query"),
        backend=lambda w: (
            stages.backend_spec(config, "zeroshot_query", dataset=w.dataset)
            if w.matcher != "none"
            else {"name": "none", "options": {}}
        ),
        # only the Inversion strategy reads these: a change re-runs Inversion alone
        inversion=lambda w: (
            config.get("zeroshot_inversion", {}) if w.query == "inversion" else {}
        ),
    script:
        "../scripts/zeroshot_query.py"


rule ris:
    input:
        query=lambda w: paths.path(config, "zeroshot_query", **dict(w.items())),
        listed=dataset_metadata,
    output:
        directory(paths.pattern(config, "ris")),
    log:
        stage_log("ris"),
    wildcard_constraints:
        query="|".join(ZS_STRATEGIES),
        ris="[a-z0-9]+",
    conda:
        stage_env("ris")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "ris", w.ris),
        gpu=lambda w: stages.gpu_count(config, "ris", w.ris),
    params:
        code=stage_code("ris"),
        backend=lambda w: stages.backend_spec(config, "ris", w.ris, w.dataset),
    script:
        "../scripts/ris.py"


rule evaluate_zeroshot:
    input:
        masks=lambda w: variant_shards(w, "ris"),
        query=lambda w: variant_shards(w, "zeroshot_query"),
        listed=dataset_metadata,
    output:
        paths.pattern(config, "evaluate_zeroshot"),
    log:
        stage_log("evaluate_zeroshot"),
    wildcard_constraints:
        query="|".join(ZS_STRATEGIES),
        ris="[a-z0-9]+",
    conda:
        stage_env("evaluate_zeroshot")
    resources:
        mem_mb=lambda w: stages.mem_mb(config, "evaluate_zeroshot"),
    params:
        code=stage_code("evaluate_zeroshot"),
        protocol="zeroshot-baav",
    script:
        "../scripts/evaluate_zeroshot.py"
