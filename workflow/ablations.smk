# Ablation studies: every arm is an ordinary run of the main Snakefile
# with the shared budget and the arm's overlay; this file runs the arms that are
# missing or stale and writes one cross-run table per study.
#   snakemake -s workflow/ablations.smk --cores all
#   snakemake -s workflow/ablations.smk --cores all --config studies=my_studies.yaml
import os
import sys

from lediflow.studies.ablations import load_studies
from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError

try:
    SPEC = load_studies(config.get("studies", "configs/ablations/studies.yaml"))
    # Where the arms write: the same run.results_dir the inner runs resolve (params.yaml <- budget).
    RESULTS = load_params(["params.yaml", SPEC["budget"]])["run"]["results_dir"]
except LediflowError as exc:
    sys.exit(f"lediflow: error: {exc}")


# What each arm runs: its whole chain to the tables, (target: prior) only the learned prior, scored at NFE 0,
# or (target: scores) its flows trained, sampled and scored, no tables (single-prior studies: configs/backbone/).
TARGET = SPEC["target"]
INNER = {"tables": "tables models", "prior": "prior_cells", "scores": "scores"}[TARGET]
# The scores target has no single file that only a finished arm has: the arm rule writes this marker after it.
DONE = "&& touch {output}" if TARGET == "scores" else ""


def arm_table(arm):
    """The file that marks an arm finished."""
    if TARGET == "prior":
        return f"{RESULTS}/ablation-{arm}/scores/flow-pixel-learned/prior-mean.json"
    if TARGET == "scores":
        return f"{RESULTS}/ablation-{arm}/scores/complete"
    return f"{RESULTS}/ablation-{arm}/tables/scores_long.csv"


# the main Snakefile's image (conda environment inside it): `--software-deployment-method conda apptainer`
container: "docker://continuumio/miniconda3:24.7.1-0"


rule all:
    default_target: True
    input:
        expand(f"{SPEC['out']}/{{study}}.md", study=SPEC["studies"]),


rule arm:
    # The inner Snakemake decides what of the arm is stale (params, code, inputs); --nolock because this
    # outer run already holds the lock on the same working directory.
    input:
        params="params.yaml",
        budget=SPEC["budget"],
        arm=lambda wc: SPEC["arm_files"][wc.arm],
    output:
        arm_table("{arm}"),
    log:
        f"{RESULTS}/ablations/logs/{{arm}}.log",
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    conda:
        "envs/lediflow.yaml"
    shell:
        f"snakemake {INNER} --cores {{threads}} --nolock "
        f"--configfile {{input.params}} {{input.budget}} {{input.arm}} > {{log}} 2>&1 {DONE}"


rule study:
    input:
        lambda wc: [arm_table(arm) for arm in SPEC["studies"][wc.study]],
    output:
        md=f"{SPEC['out']}/{{study}}.md",
        csv=f"{SPEC['out']}/{{study}}.csv",
        long=f"{SPEC['out']}/{{study}}_long.csv",
    params:
        runs=lambda wc: " ".join(f"{RESULTS}/ablation-{arm}" for arm in SPEC["studies"][wc.study]),
        out=lambda wc, output: os.path.dirname(output.md),
        cells=TARGET,
    log:
        os.path.join(SPEC["out"], "logs", "{study}.log"),
    conda:
        "envs/lediflow.yaml"
    shell:
        "lediflow compare-runs --study {wildcards.study} --out {params.out} --cells {params.cells} --runs {params.runs} "
        "> {log} 2>&1"
