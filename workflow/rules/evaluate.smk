# Stage 6: official AVSBench protocol (and the batch-independent F) per variant.


def variant_shards(w, kind):
    shards = pipeline.shard_names(config, w.dataset)
    base = f"{w.dataset}/{w.alm}/{w.aprompts}/{w.llm}/{w.strategy}"
    if kind == "masks":
        return [f"{R}/masks/{base}/{w.vfm}/{w.thr}/{s}" for s in shards]
    return [f"{R}/text/{base}/{s}" for s in shards]


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
