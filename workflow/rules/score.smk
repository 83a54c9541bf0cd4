# Scores: reference features once per run, then FID/KID/mmd_inception/CMMD per sample set.


rule reference_features:
    input:
        rules.prepare_data.output.manifest,
    output:
        inception=f"{paths.reference_dir(PARAMS)}/inception-{PARAMS['score']['reference_split']}.npy",
        info=f"{paths.reference_dir(PARAMS)}/reference.json",
        **({"floor": str(paths.data_floor_file(PARAMS))} if has_second_reference() else {}),
    params:
        score={k: PARAMS["score"][k] for k in REFERENCE_KEYS},
        # the data floor is scored at the cells' sample count
        num_samples=PARAMS["sample"]["num_samples"],
    threads: 1
    benchmark:
        bench_file("reference_features"),
    log:
        log_file("reference_features"),
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("reference-features") + " > {log} 2>&1"


rule autoencoder_floor:
    # The best a latent flow can reach: the autoencoder's reconstructions scored like a cell. Its own rule
    # (not encode-latents) so that a scoring change never invalidates the latents every latent model trains on.
    input:
        norm=rules.encode_latents.output.norm,
        reference=rules.reference_features.output.info,
    output:
        str(paths.autoencoder_floor_file(PARAMS)),
    params:
        score={k: PARAMS["score"][k] for k in REFERENCE_KEYS},
        sample={k: PARAMS["sample"][k] for k in ("num_samples", "batch_size")},
    threads: 1
    benchmark:
        bench_file("autoencoder_floor"),
    log:
        log_file("autoencoder_floor"),
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("autoencoder-floor") + " > {log} 2>&1"


rule score:
    input:
        samples=rules.sample.output.samples,
        record=rules.sample.output.record,
        manifest=rules.sample.output.manifest,
        reference=rules.reference_features.output.info,
    output:
        f"{RUN_DIR}/scores/{{model}}/{{setting}}.json",
    params:
        score=PARAMS["score"],
    threads: 1
    benchmark:
        f"{RUN_DIR}/benchmarks/score-{{model}}-{{setting}}.tsv",
    log:
        f"{RUN_DIR}/logs/score-{{model}}-{{setting}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("score", "--model {wildcards.model} --setting {wildcards.setting}") + " > {log} 2>&1"


rule scores:
    # Every cell of the sweep scored (the DVC "evaluate" stage's target).
    input:
        [rules.score.output[0].format(model=model, setting=setting) for model, setting in paths.cells(PARAMS)],
        rules.autoencoder_floor.output if "latent" in PARAMS["flow"]["spaces"] else [],
