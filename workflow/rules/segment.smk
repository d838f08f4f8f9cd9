# Stage 4: text -> masks with a VFM, per shard and box threshold.


rule segment:
    input:
        text=f"{R}/text/{{dataset}}/{{alm}}/{{aprompts}}/{{llm}}/{{strategy}}/{{shard}}",
        metadata=dataset_metadata,
    output:
        directory(
            f"{R}/masks/{{dataset}}/{{alm}}/{{aprompts}}/{{llm}}/{{strategy}}/{{vfm}}/{{thr}}/{{shard}}"
        ),
    log:
        "logs/segment/{dataset}/{alm}/{aprompts}/{llm}/{strategy}/{vfm}/{thr}/{shard}.log",
    conda:
        "../../envs/segment.yaml"
    resources:
        gpu=lambda w: gpu_for(backend_of("vfm", w.vfm)["name"]),
    params:
        code=code_hash("avsbridge.segment", "avsbridge.pipeline"),
        backend=lambda w: backend_of("vfm", w.vfm),
        text_threshold=config["vfm"]["text_threshold"],
    script:
        "../scripts/segment.py"
