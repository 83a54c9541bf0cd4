# Sampling sweep: {model} x {setting}, plus the learned prior's extras.

SAMPLE_KEYS = ("num_samples", "batch_size", "grid_images")


def source_inputs(wildcards):
    """The flow model, the models its x0 comes from (learned prior), and the decoder (latent space)."""
    space, prior = paths.parse_flow_name(wildcards.model)
    inputs = {"flow": model_files(wildcards.model)["model"]}
    if prior == "learned":
        inputs["prior"] = learned_prior_inputs(space)
    if space == "latent":
        inputs["norm"] = rules.encode_latents.output.norm
    return inputs


wildcard_constraints:
    model="flow-(pixel|latent)-(gaussian|learned)",
    setting=r"(euler|midpoint|heun3|rk4)-\d+|dopri5-[0-9.e+-]+",


rule sample:
    input:
        unpack(source_inputs),
    output:
        samples=f"{RUN_DIR}/samples/{{model}}/{{setting}}/samples.npy",
        record=f"{RUN_DIR}/samples/{{model}}/{{setting}}/record.json",
        grid=f"{RUN_DIR}/samples/{{model}}/{{setting}}/grid.png",
    params:
        sample={k: PARAMS["sample"][k] for k in SAMPLE_KEYS},
        source=lambda wc: (PARAMS["prior"]["std_scale"], PARAMS["latent_sampler"]) if wc.model.endswith("-learned") else None,
    # All cores and one job at a time: the per-image timings in record.json must not share the CPU.
    threads: workflow.cores
    benchmark:
        f"{RUN_DIR}/benchmarks/sample-{{model}}-{{setting}}.tsv",
    log:
        f"{RUN_DIR}/logs/sample-{{model}}-{{setting}}.log",
    shell:
        lediflow_cmd("sample", "--model {wildcards.model} --setting {wildcards.setting}") + " > {log} 2>&1"


EXTRAS_KEYS = ("interpolation_pairs", "interpolation_points", "inpaint_images", "inpaint_mask", "extras_steps")


def extras_inputs(wildcards=None):
    return [model_files(paths.flow_name("pixel", "learned"))["model"], *learned_prior_inputs("pixel")]


rule interpolate:
    input:
        extras_inputs(),
    output:
        f"{paths.extras_dir(PARAMS)}/interpolation/interpolation.png",
    params:
        extras={k: PARAMS["sample"][k] for k in EXTRAS_KEYS},
    benchmark:
        bench_file("interpolate"),
    log:
        log_file("interpolate"),
    shell:
        lediflow_cmd("interpolate") + " > {log} 2>&1"


rule inpaint:
    input:
        extras_inputs(),
    output:
        figure=f"{paths.extras_dir(PARAMS)}/inpainting/inpainting.png",
        metrics=f"{paths.extras_dir(PARAMS)}/inpainting/metrics.json",
    params:
        extras={k: PARAMS["sample"][k] for k in EXTRAS_KEYS},
    benchmark:
        bench_file("inpaint"),
    log:
        log_file("inpaint"),
    shell:
        lediflow_cmd("inpaint") + " > {log} 2>&1"


def extras_targets():
    """Interpolation and inpainting need the pixel-space LeDiFlow model."""
    if "learned" in PARAMS["flow"]["priors"] and "pixel" in PARAMS["flow"]["spaces"]:
        return [rules.interpolate.output[0], rules.inpaint.output.figure]
    return []


rule samples:
    # Every cell of the sweep and the extras (the DVC "sample" stage's target).
    input:
        expand(rules.sample.output.record, model=paths.flow_models(PARAMS), setting=paths.settings(PARAMS)),
        extras_targets(),
