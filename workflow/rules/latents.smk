# Latent variant: the autoencoder and the stored latents of every image.


rule train_autoencoder:
    input:
        rules.prepare_data.output.manifest,
    output:
        manifest=f"{paths.autoencoder_dir(PARAMS)}/manifest.json",
    params:
        autoencoder=with_options({k: v for k, v in PARAMS["autoencoder"].items() if k != "encode_batch_size"},
                                 "pixel"),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    resources:
        gpus=0,
    benchmark:
        bench_file("train_autoencoder"),
    log:
        log_file("train_autoencoder"),
    conda:
        "../envs/lediflow.yaml"
    shell:
        train_cmd("train-autoencoder") + " > {log} 2>&1"


rule encode_latents:
    input:
        rules.train_autoencoder.output.manifest,
    output:
        train=f"{paths.latents_dir(PARAMS)}/train_mean.npy",
        norm=f"{paths.latents_dir(PARAMS)}/norm.json",
        manifest=f"{paths.latents_dir(PARAMS)}/manifest.json",
    benchmark:
        bench_file("encode_latents"),
    log:
        log_file("encode_latents"),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("encode-latents") + " > {log} 2>&1"


