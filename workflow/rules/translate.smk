# Stage 3: LLM prompt translation (Table 4 strategies) and the weak-label variant.


rule translate:
    input:
        alm=lambda w: [
            f"{R}/alm/{w.dataset}/{w.alm}/{p}/{w.shard}" for p in w.aprompts.split("+")
        ],
    output:
        directory(
            f"{R}/text/{{dataset}}/{{alm}}/{{aprompts}}/{{llm}}/{{strategy}}/{{shard}}"
        ),
    log:
        "logs/translate/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{shard}.log",
    wildcard_constraints:
        alm="(?!weaklabel)[a-z0-9-]+",
    conda:
        "../../envs/translate.yaml"
    params:
        code=code_hash("avsbridge.translate", "avsbridge.pipeline"),
        backend=lambda w: backend_of("llm") if w.llm != "none" else {"name": "none"},
        cache_dir=LLM_CACHE,
        offline=config.get("llm_offline", False),
    script:
        "../scripts/translate.py"


rule weak_labels:
    input:
        lambda w: config["datasets"][w.dataset].get("weak_labels", []),
    output:
        directory(f"{R}/text/{{dataset}}/weaklabel/label/none/none/{{shard}}"),
    log:
        "logs/weak_labels/{dataset}/{shard}.log",
    conda:
        "../../envs/translate.yaml"
    params:
        code=code_hash("avsbridge.translate", "avsbridge.pipeline"),
        clips=lambda w: [c.id for c in shard_clips(w)],
    script:
        "../scripts/weak_labels.py"
