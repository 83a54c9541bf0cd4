# lediflow: the whole LeDiFlow chain. This file only wires: config, schema
# validation, rule files, and the final targets.
#   snakemake --cores all                                  # params.yaml
#   snakemake --cores all --configfile configs/smoke.yaml  # CI smoke run
import sys
from pathlib import Path

from lediflow.pipeline import preflight, runlock
from lediflow.pipeline.workflow import resolve_config

configfile: "params.yaml"

# Every rule runs in this image when asked (`--software-deployment-method conda apptainer`), with its conda
# environment (workflow/envs/lediflow.yaml) built inside it: Snakemake's conda-in-container deployment.
container: "docker://continuumio/miniconda3:24.7.1-0"

# Validate (exit 2 with one line on a bad key or a geometry that cannot be built) and fill schema
# defaults. Parsing writes no params; onstart (a real execution, under Snakemake's lock) writes the
# resolved params to results/<run>/params.yaml, which every rule's CLI call reads.
PARAMS, RUN_DIR, PARAMS_FILE = resolve_config(config, workflow.config_settings.overwrite_config, workflow.configfiles)

# A finished artifact that no longer matches its manifest or seal is moved aside before Snakemake plans, so
# this same call re-makes it (docs/provenance.md, "Verified inputs"); a dry run only reports it.
preflight.set_aside_damaged(Path(RUN_DIR), sys.argv[1:], workflow.is_main_process)


onstart:
    runlock.begin(PARAMS)


onsuccess:
    runlock.end(PARAMS)


onerror:
    runlock.end(PARAMS)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/latents.smk"
include: "workflow/rules/prior.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule models:
    # Every trained network and the prior report (the DVC "train" stage's target).
    input:
        expand(rules.prior_report.output.report, space=PARAMS["flow"]["spaces"])
        if "learned" in PARAMS["flow"]["priors"] else [],
        expand(
            rules.train_flow.output.model,
            space=PARAMS["flow"]["spaces"],
            prior=PARAMS["flow"]["priors"],
        ),


rule prior_cells:
    # The learned prior measured on its own: its zero-step cells scored and its report, no flow trained
    # (the target of prior-only studies, configs/prior_design/).
    input:
        expand(rules.prior_report.output.report, space=PARAMS["flow"]["spaces"]),
        [rules.score.output[0].format(model=paths.flow_name(space, "learned"), setting=setting)
         for space in PARAMS["flow"]["spaces"] for setting in paths.ZERO_STEP_SETTINGS],


rule all:
    default_target: True
    input:
        rules.prepare_data.output.manifest,
        rules.models.input,
        rules.samples.input,
        rules.scores.input,
        rules.tables.output,
        expand(rules.equal_nfe_grid.output.png, space=equal_nfe_spaces()),
