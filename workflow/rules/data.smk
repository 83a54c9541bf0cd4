# Dataset stage: source -> results/<run>/data/{train,test}.npy + manifest.json


rule prepare_data:
    output:
        train=f"{RUN_DIR}/data/train.npy",
        test=f"{RUN_DIR}/data/test.npy",
        manifest=f"{RUN_DIR}/data/manifest.json",
    params:
        section={k: v for k, v in PARAMS["data"].items() if k not in TRAINING_ONLY_DATA_KEYS},
    benchmark:
        f"{RUN_DIR}/benchmarks/prepare_data.tsv",
    log:
        f"{RUN_DIR}/logs/prepare_data.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("prepare-data") + " > {log} 2>&1"
