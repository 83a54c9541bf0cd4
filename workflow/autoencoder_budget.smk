# Autoencoder budget study: the autoencoder floor (FID of its test reconstructions) against training
# steps. One run (results/autoencoder-budget/) trained on: each budget raises autoencoder.train.steps and the
# trainer resumes from the previous budget's checkpoint (constant learning rate after warm-up, and the resume
# ignores the step budget, so the path is that of a single longer run). Budgets run in order, each once: a
# finished point is a record of the run at that budget, which a later run cannot reproduce, so it has no job
# that could redo it (delete its steps_<n>.json to redo it, and every budget after it).
#   snakemake -s workflow/autoencoder_budget.smk --cores all
#   snakemake -s workflow/autoencoder_budget.smk --cores all --config budgets=[1000,2000,4000]
import sys
from pathlib import Path

from lediflow.pipeline import paths
from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError

BUDGET = "configs/autoencoder_budget/budget.yaml"
try:
    BUDGETS = sorted(int(n) for n in config.get("budgets", [1000, 2000, 4000, 8000]))
    PARAMS = load_params(["params.yaml", BUDGET])
except (LediflowError, ValueError, TypeError) as exc:
    sys.exit(f"lediflow: error: budgets must be a list of step counts ({exc})")
OUT = config.get("out", "results/ablations")
POINT = f"{OUT}/autoencoder_budget/steps_{{n}}.json"
# Only the budgets without a record get a point job; the records that exist are inputs like any source file.
MISSING = [n for n in BUDGETS if not Path(POINT.format(n=n)).exists()]
RUN = paths.run_dir(PARAMS)
FLOOR = paths.autoencoder_floor_file(PARAMS)
# Named beside the floor because an interrupted point leaves the floor of the previous budget but no manifest (Snakemake
# deletes an unfinished job's output): asked for the floor alone, the inner run would find nothing to do.
MANIFEST = paths.autoencoder_dir(PARAMS) / "manifest.json"


# the main Snakefile's image (conda environment inside it): `--software-deployment-method conda apptainer`
container: "docker://continuumio/miniconda3:24.7.1-0"


rule all:
    default_target: True
    input:
        f"{OUT}/autoencoder_budget.md",


rule overlay:
    output:
        f"{OUT}/autoencoder_budget/steps_{{n}}.yaml",
    log:
        f"{OUT}/autoencoder_budget/logs/overlay_{{n}}.log",
    conda:
        "envs/lediflow.yaml"
    shell:
        "printf 'autoencoder:\\n  train: {{steps: {wildcards.n}}}\\n' > {output} 2> {log}"


def previous_point(wc):
    """Each budget continues the previous one's autoencoder, so they run in order."""
    n = int(wc.n)
    if n not in BUDGETS:
        raise ValueError(f"{n} is not one of the budgets {BUDGETS}")
    k = BUDGETS.index(n)
    return [POINT.format(n=BUDGETS[k - 1])] if k else []


rule point:
    wildcard_constraints:
        n="|".join(str(n) for n in MISSING) or "(?!)",
    # The inner Snakemake retrains (resumes) the autoencoder, re-encodes and scores the floor; --nolock because
    # this outer run already holds the lock on the same working directory.
    input:
        previous_point,
        params="params.yaml",
        budget=BUDGET,
        overlay=rules.overlay.output,
    output:
        POINT,
    log:
        f"{OUT}/autoencoder_budget/logs/steps_{{n}}.log",
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    conda:
        "envs/lediflow.yaml"
    shell:
        f"snakemake {MANIFEST} {FLOOR} --cores {{threads}} --nolock --configfile {{input.params}} {{input.budget}} "
        f"{{input.overlay}} > {{log}} 2>&1 && lediflow autoencoder-budget-point --config {RUN}/params.yaml "
        "--out {output}"


rule table:
    input:
        [POINT.format(n=n) for n in BUDGETS],
    output:
        f"{OUT}/autoencoder_budget.md",
    log:
        f"{OUT}/autoencoder_budget/logs/table.log",
    conda:
        "envs/lediflow.yaml"
    shell:
        f"lediflow autoencoder-budget --points {{input}} --out {OUT} > {{log}} 2>&1"
