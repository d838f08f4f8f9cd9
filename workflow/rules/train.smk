# OpenAVS-ST: the teacher's masks on a train split are pseudo labels (the segment stage on a
# dataset entry with split: train); a student trains on them over frozen audio features,
# predicts the test split in the segment stage's layout, and is scored by the same evaluate.


rule pseudo_labels:
    input:
        masks=lambda w: variant_shards(w, "segment"),
    output:
        paths.pattern(config, "pseudo_labels"),
    log:
        stage_log("pseudo_labels"),
    conda:
        stage_env("pseudo_labels")
    params:
        code=stage_code("pseudo_labels"),
    script:
        "../scripts/pseudo_labels.py"


rule audio_features:
    input:
        audio=shard_audio,
        checked=lambda w: paths.path(config, "data_check", dataset=base_dataset(w)),
    output:
        directory(paths.pattern(config, "audio_features")),
    log:
        stage_log("audio_features"),
    conda:
        stage_env("audio_features")
    resources:
        mem_mb=stages.stage("audio_features").mem_mb,
    params:
        code=stage_code("audio_features"),
        train=config.get("train", {}),
    script:
        "../scripts/audio_features.py"


rule train:
    input:
        labels=lambda w: teacher_shards(w, "segment"),
        pseudo=lambda w: teacher_path(w, "pseudo_labels"),
        features=lambda w: feature_shards(w, train_split(w)),
    output:
        directory(paths.pattern(config, "train")),
    log:
        stage_log("train"),
    conda:
        stage_env("train")
    resources:
        gpu=lambda w: student_gpu(w),
        mem_mb=stages.stage("train").mem_mb,
    params:
        code=stage_code("train"),
        train=config.get("train", {}),
    script:
        "../scripts/train.py"


rule predict:
    input:
        checkpoint=lambda w: paths.path(config, "train", **dict(w.items())),
        features=lambda w: paths.path(
            config,
            "audio_features",
            dataset=w.dataset,
            afeat=student_afeat(w),
            shard=w.shard,
        ),
    output:
        directory(paths.pattern(config, "predict")),
    log:
        stage_log("predict"),
    conda:
        stage_env("predict")
    resources:
        gpu=lambda w: student_gpu(w),
        mem_mb=stages.stage("predict").mem_mb,
    params:
        code=stage_code("predict"),
        train=config.get("train", {}),
    script:
        "../scripts/predict.py"


rule evaluate_st:
    input:
        masks=lambda w: variant_shards(w, "predict"),
        text=[],
        metadata=dataset_metadata,
    output:
        paths.pattern(config, "evaluate_st"),
    log:
        stage_log("evaluate_st"),
    conda:
        stage_env("evaluate_st")
    resources:
        mem_mb=stages.stage("evaluate_st").mem_mb,
    params:
        code=stage_code("evaluate_st"),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/evaluate_st.py"
