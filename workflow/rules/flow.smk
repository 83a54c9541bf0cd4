# Flow-matching models: {space} x {prior}, the Gaussian baseline, OT-CFM and LeDiFlow.


rule train_flow:
    input:
        unpack(flow_inputs),
    output:
        **model_files(paths.flow_name("{space}", "{prior}")),
    params:
        flow=lambda wc: with_options(flow_model_config(PARAMS, wc.space, wc.prior), wc.space),
        # Snakemake compares these values, not their names: a paired flow's stay what they were before the coupling
        # switch existed, so its finished models are not re-made
        source=lambda wc: learned_source(wc.prior),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    resources:
        gpus=0,
    benchmark:
        f"{RUN_DIR}/benchmarks/train_flow-{{space}}-{{prior}}.tsv",
    log:
        f"{RUN_DIR}/logs/train_flow-{{space}}-{{prior}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        train_cmd("train-flow", "--space {wildcards.space} --prior {wildcards.prior}") + " > {log} 2>&1"
