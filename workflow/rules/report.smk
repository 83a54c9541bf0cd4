# Tables and figures of the run (and the material of `snakemake --report`).


rule tables:
    input:
        rules.scores.input,
        rules.reference_features.output,
        expand(rules.time_cells.output[0], space=PARAMS["flow"]["spaces"]),
        rules.autoencoder_floor.output if "latent" in PARAMS["flow"]["spaces"] else [],
    output:
        quality=report(f"{paths.tables_dir(PARAMS)}/quality_vs_nfe.csv", caption="../report/quality_vs_nfe.rst",
                       category="Tables"),
        speedup=report(f"{paths.tables_dir(PARAMS)}/speedup.csv", caption="../report/speedup.rst", category="Tables"),
        ratio=report(f"{paths.tables_dir(PARAMS)}/quality_ratio.csv", caption="../report/quality_ratio.rst",
                     category="Tables"),
        headline=report(f"{paths.tables_dir(PARAMS)}/headline.csv", caption="../report/headline.rst",
                        category="Tables"),
        cost=report(f"{paths.tables_dir(PARAMS)}/cost_ratio.csv", caption="../report/cost_ratio.rst",
                    category="Tables"),
        **second_reference_tables(),
        long=f"{paths.tables_dir(PARAMS)}/scores_long.csv",
        curves=report(
            expand(f"{paths.figures_dir(PARAMS)}/quality_vs_nfe_{{space}}.png", space=PARAMS["flow"]["spaces"]),
            caption="../report/quality_curves.rst", category="Figures"),
        strips=report(
            expand(f"{paths.figures_dir(PARAMS)}/samples_{{model}}.png", model=paths.flow_models(PARAMS)),
            caption="../report/samples.rst", category="Samples"),
        losses=report(f"{paths.figures_dir(PARAMS)}/training_losses.png", caption="../report/losses.rst",
                      category="Figures"),
    benchmark:
        bench_file("tables"),
    log:
        log_file("tables"),
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("tables") + " > {log} 2>&1"


rule equal_nfe_grid:
    # The baseline and LeDiFlow at each Euler step count of the sweep, the same per-image seeds in every row.
    input:
        lambda wc: [path for prior in ("gaussian", "learned")
                    for value in source_inputs(SimpleNamespace(model=paths.flow_name(wc.space, prior))).values()
                    for path in (value if isinstance(value, list) else [value])],
    output:
        png=report(f"{paths.figures_dir(PARAMS)}/equal_nfe_{{space}}.png", caption="../report/equal_nfe.rst",
                   category="Samples"),
        pdf=f"{paths.figures_dir(PARAMS)}/equal_nfe_{{space}}.pdf",
    params:
        sample={k: PARAMS["sample"][k] for k in ("steps", "grid_images")},
        source=(PARAMS["prior"]["std_scale"], PARAMS["latent_sampler"]),
    threads: 1
    log:
        f"{RUN_DIR}/logs/equal_nfe_grid-{{space}}.log",
    conda:
        "../envs/lediflow.yaml"
    shell:
        lediflow_cmd("equal-nfe-grid", "--space {wildcards.space}") + " > {log} 2>&1"
