# Sampling sweep: {model} x {setting}, plus the learned prior's extras.
from types import SimpleNamespace


wildcard_constraints:
    model="flow-(pixel|latent)-(gaussian|learned|ot)",
    setting=r"(euler|midpoint|heun3|rk4)-\d+|dopri5-[0-9.e+-]+|prior-(x0|mean)",


rule sample:
    input:
        unpack(source_inputs),
    output:
        samples=f"{RUN_DIR}/samples/{{model}}/{{setting}}/samples.npy",
        record=f"{RUN_DIR}/samples/{{model}}/{{setting}}/record.json",
        grid=f"{RUN_DIR}/samples/{{model}}/{{setting}}/grid.png",
        manifest=f"{RUN_DIR}/samples/{{model}}/{{setting}}/manifest.json",
    params:
        sample=with_options({k: PARAMS["sample"][k] for k in SAMPLE_KEYS}, "pixel", training=False),
        source=lambda wc: (PARAMS["prior"]["std_scale"], PARAMS["latent_sampler"]) if wc.model.endswith("-learned") else None,
    # All cores and one job at a time: the per-image timings in record.json must not share the CPU.
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    benchmark:
        f"{RUN_DIR}/benchmarks/sample-{{model}}-{{setting}}.tsv",
    log:
        f"{RUN_DIR}/logs/sample-{{model}}-{{setting}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("sample", "--model {wildcards.model} --setting {wildcards.setting}") + " > {log} 2>&1"


rule time_cells:
    # Repeated, interleaved timings of both arms at every setting (the tables' ms/image).
    input:
        timing_inputs,
    output:
        f"{RUN_DIR}/timing/{{space}}.json",
    params:
        timing=with_options({k: PARAMS["sample"][k] for k in ("timing_images", "timing_repeats")}, "pixel",
                            training=False),
        settings=lambda wc: {m: paths.solver_settings(PARAMS, m) for m in paths.flow_models(PARAMS)
                             if f"-{wc.space}-" in m},
    # All cores, one job at a time: nothing else may share the CPU while it is timed.
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    benchmark:
        f"{RUN_DIR}/benchmarks/time_cells-{{space}}.tsv",
    log:
        f"{RUN_DIR}/logs/time_cells-{{space}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("time-cells", "--space {wildcards.space}") + " > {log} 2>&1"


rule timings:
    # Both spaces timed (the DVC "timing" stage's target).
    input:
        expand(rules.time_cells.output[0], space=PARAMS["flow"]["spaces"]),


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
    conda:
        "../envs/lediflow.yaml"
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
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("inpaint") + " > {log} 2>&1"


rule samples:
    # Every cell of the sweep and the extras (the DVC "sample" stage's target).
    input:
        [rules.sample.output.record.format(model=model, setting=setting) for model, setting in paths.cells(PARAMS)],
        extras_targets(),
