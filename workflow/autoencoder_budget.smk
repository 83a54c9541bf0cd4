# Autoencoder budget study (issue 14): the autoencoder floor (FID of its test reconstructions) against training
# steps. One run (results/autoencoder-budget/) trained on: each budget raises autoencoder.train.steps and the
# trainer resumes from the previous budget's checkpoint (constant learning rate after warm-up, and the resume
# ignores the step budget, so the path is that of a single longer run). Budgets run in order, each once.
#   snakemake -s workflow/autoencoder_budget.smk --cores all
#   snakemake -s workflow/autoencoder_budget.smk --cores all --config budgets=[1000,2000,4000]
import sys

from lediflow import paths
from lediflow.config import load_params
from lediflow.errors import LediflowError

BUDGET = "configs/autoencoder_budget/budget.yaml"
try:
    BUDGETS = sorted(int(n) for n in config.get("budgets", [1000, 2000, 4000, 8000]))
    PARAMS = load_params(["params.yaml", BUDGET])
except (LediflowError, ValueError, TypeError) as exc:
    sys.exit(f"lediflow: error: budgets must be a list of step counts ({exc})")
OUT = config.get("out", "results/ablations")
RUN = paths.run_dir(PARAMS)
FLOOR = paths.autoencoder_floor_file(PARAMS)


rule all:
    default_target: True
    input:
        f"{OUT}/autoencoder_budget.md",


rule overlay:
    output:
        f"{OUT}/autoencoder_budget/steps_{{n}}.yaml",
    shell:
        "printf 'autoencoder:\\n  train: {{steps: {wildcards.n}}}\\n' > {output}"


def previous_point(wc):
    """Each budget continues the previous one's autoencoder, so they run in order."""
    n = int(wc.n)
    if n not in BUDGETS:
        raise ValueError(f"{n} is not one of the budgets {BUDGETS}")
    k = BUDGETS.index(n)
    return [f"{OUT}/autoencoder_budget/steps_{BUDGETS[k - 1]}.json"] if k else []


rule point:
    # The inner Snakemake retrains (resumes) the autoencoder, re-encodes and scores the floor; --nolock because
    # this outer run already holds the lock on the same working directory.
    input:
        previous_point,
        params="params.yaml",
        budget=BUDGET,
        overlay=rules.overlay.output,
    output:
        f"{OUT}/autoencoder_budget/steps_{{n}}.json",
    log:
        f"{OUT}/autoencoder_budget/logs/steps_{{n}}.log",
    threads: workflow.cores
    shell:
        f"snakemake {FLOOR} --cores {{threads}} --nolock --configfile {{input.params}} {{input.budget}} "
        f"{{input.overlay}} > {{log}} 2>&1 && lediflow autoencoder-budget-point --config {RUN}/params.yaml "
        "--out {output}"


rule table:
    input:
        expand(rules.point.output, n=BUDGETS),
    output:
        f"{OUT}/autoencoder_budget.md",
    shell:
        "lediflow autoencoder-budget --points {input} --out " + OUT
