# Scores: reference features once per run, then FID/KID/mmd_inception/CMMD per sample set.

REFERENCE_KEYS = ("reference_split", "reference_count", "inception_weights", "cmmd", "clip_model",
                  "clip_pretrained", "clip_weights")


rule reference_features:
    input:
        rules.prepare_data.output.manifest,
    output:
        inception=f"{paths.reference_dir(PARAMS)}/inception.npy",
        info=f"{paths.reference_dir(PARAMS)}/reference.json",
    params:
        score={k: PARAMS["score"][k] for k in REFERENCE_KEYS},
    threads: 1
    benchmark:
        bench_file("reference_features"),
    log:
        log_file("reference_features"),
    shell:
        lediflow_cmd("reference-features") + " > {log} 2>&1"


rule score:
    input:
        samples=rules.sample.output.samples,
        record=rules.sample.output.record,
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
    shell:
        lediflow_cmd("score", "--model {wildcards.model} --setting {wildcards.setting}") + " > {log} 2>&1"


rule scores:
    # Every cell of the sweep scored (the DVC "evaluate" stage's target).
    input:
        expand(rules.score.output[0], model=paths.flow_models(PARAMS), setting=paths.settings(PARAMS)),
