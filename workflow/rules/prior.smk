# Learned prior: auxiliary encoder/decoder, latent sampler, and the closeness report.


rule train_prior:
    input:
        data=rules.prepare_data.output.manifest,
    output:
        **model_files("prior"),
    params:
        section=PARAMS["prior"],
    threads: workflow.cores
    log:
        log_file("train_prior"),
    shell:
        lediflow_cmd("train-prior") + " > {log} 2>&1"


rule train_latent_sampler:
    input:
        prior=rules.train_prior.output.model,
        data=rules.prepare_data.output.manifest,
    output:
        **model_files("latent_sampler"),
    params:
        section=PARAMS["latent_sampler"],
    threads: workflow.cores
    log:
        log_file("train_latent_sampler"),
    shell:
        lediflow_cmd("train-latent-sampler") + " > {log} 2>&1"


def latent_sampler_input(wildcards=None):
    """The latent sampler model, when the learned prior draws z with it."""
    if PARAMS["prior"]["latent_sampler"] == "flow":
        return [rules.train_latent_sampler.output.model]
    return []


rule prior_report:
    input:
        rules.train_prior.output.model,
        latent_sampler_input(),
    output:
        report=f"{paths.prior_report_dir(PARAMS)}/report.json",
        grid=f"{paths.prior_report_dir(PARAMS)}/prior_grid.png",
    params:
        prior=PARAMS["prior"],
        latent_sampler=PARAMS["latent_sampler"],
    log:
        log_file("prior_report"),
    shell:
        lediflow_cmd("prior-report") + " > {log} 2>&1"
