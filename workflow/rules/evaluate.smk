# Stage 6: official AVSBench protocol (and the batch-independent F) per variant.


rule evaluate:
    input:
        masks=lambda w: variant_shards(w, "masks"),
        text=lambda w: variant_shards(w, "text"),
        metadata=dataset_metadata,
    output:
        f"{R}/metrics/{{dataset}}/{{alm}}/{{aprompts}}/{{llm}}/{{strategy}}/{{vfm}}/{{thr}}.json",
    log:
        "logs/evaluate/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}.log",
    conda:
        "../../envs/core.yaml"
    params:
        code=code_hash("avsbridge.metrics", "avsbridge.pipeline"),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/evaluate.py"
