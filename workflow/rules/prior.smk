# Learned prior per {space}: auxiliary encoder/decoder, latent sampler, and the closeness report.


rule train_prior:
    input:
        data=lambda wc: space_inputs(wc.space),
    output:
        **model_files("prior-{space}"),
    params:
        section=lambda wc: with_options(PARAMS["prior"], wc.space),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    resources:
        gpus=0,
    benchmark:
        f"{RUN_DIR}/benchmarks/train_prior-{{space}}.tsv",
    log:
        f"{RUN_DIR}/logs/train_prior-{{space}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        train_cmd("train-prior", "--space {wildcards.space}") + " > {log} 2>&1"


rule train_latent_sampler:
    input:
        prior=lambda wc: model_inputs(paths.prior_name(wc.space)),
    output:
        **model_files("latent_sampler-{space}"),
    params:
        section=lambda wc: with_options(PARAMS["latent_sampler"], wc.space, training=False),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    resources:
        gpus=0,
    benchmark:
        f"{RUN_DIR}/benchmarks/train_latent_sampler-{{space}}.tsv",
    log:
        f"{RUN_DIR}/logs/train_latent_sampler-{{space}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        train_cmd("train-latent-sampler", "--space {wildcards.space}") + " > {log} 2>&1"


rule prior_report:
    input:
        lambda wc: learned_prior_inputs(wc.space),
    output:
        report=f"{RUN_DIR}/prior_report/{{space}}/report.json",
        grid=f"{RUN_DIR}/prior_report/{{space}}/prior_grid.png",
    params:
        prior=PARAMS["prior"],
        latent_sampler=PARAMS["latent_sampler"],
        # the latent sampler's FID uses the scorer's Inception and bootstrap
        score={k: PARAMS["score"][k] for k in ("inception_weights", "batch_size", "bootstrap_resamples")},
    benchmark:
        f"{RUN_DIR}/benchmarks/prior_report-{{space}}.tsv",
    log:
        f"{RUN_DIR}/logs/prior_report-{{space}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("prior-report", "--space {wildcards.space}") + " > {log} 2>&1"
