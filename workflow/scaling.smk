# Scaling study: LeDiFlow's effect against training compute, with seeds. Every arm is an ordinary
# run of the main Snakefile at run.train_scale x the default budget and a run.seed; the x1 seed-0 arm is the
# default run itself (results/<params.yaml's run.name>), not a copy. An interrupted study resumes where it
# stopped: a finished arm is never redone (its tables are its marker, whatever the files' mtimes, so a fresh
# clone's checkout order cannot make it stale; --force <its tables> redoes one on purpose) and an unfinished one
# resumes its trainers from their checkpoints. The latent arms above the study's fixed_autoencoder scale load the
# autoencoder of that scale's seed-0 arm, made first where it is missing.
#   snakemake -s workflow/scaling.smk -n                 # the arms still to run
#   snakemake -s workflow/scaling.smk --cores all
#   snakemake -s workflow/scaling.smk --cores all --config study=my_study.yaml
import os
import sys
from pathlib import Path

import yaml

from lediflow.studies import scaling
from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError

STUDY = config.get("study", "configs/scaling/study.yaml")
try:
    SPEC = scaling.load_spec(STUDY)
    BASE = load_params(SPEC["configs"])
    ARMS = {arm.name: arm for arm in scaling.arms(SPEC, BASE["run"]["name"], BASE["run"]["results_dir"])}
except LediflowError as exc:
    sys.exit(f"lediflow: error: {exc}")
RESULTS = BASE["run"]["results_dir"]
OUT = SPEC["out"]
# The latent arms above the study's fixed_autoencoder scale load the autoencoder of its seed-0 arm
FIXED = scaling.fixed_autoencoder_arm(SPEC, list(ARMS.values()))
FIXED_MANIFEST = str(scaling.autoencoder_manifest(RESULTS, FIXED.name)) if FIXED else None


def arm_tables(name):
    """The file that marks an arm finished: its run's tables."""
    return str(scaling.tables_marker(Path(RESULTS) / name))


# the main Snakefile's image (conda environment inside it): `--software-deployment-method conda apptainer`
container: "docker://continuumio/miniconda3:24.7.1-0"


rule all:
    # The arms by name as well as the summary: Snakemake skips the producers of a missing input when the
    # consumer's output exists and looks current (scaling.md is committed), so unfinished arms must be targets.
    default_target: True
    input:
        f"{OUT}/scaling.md",
        [arm_tables(name) for name in ARMS],


rule overlay:
    # The arm's overlay on the base configs and the study budget: run name, scale, seed, spaces.
    output:
        f"{OUT}/arms/{{arm}}.yaml",
    params:
        overlay=lambda wc: ARMS[wc.arm].overlay(),
    log:
        f"{OUT}/logs/overlay-{{arm}}.log",
    run:
        with open(output[0], "w") as handle:
            yaml.safe_dump(params.overlay, handle, sort_keys=False)


def arm_configs(name):
    arm = ARMS[name]
    return [*SPEC["configs"]] if arm.default else [*SPEC["configs"], SPEC["budget"], f"{OUT}/arms/{arm.name}.yaml"]


PREVIOUS = scaling.predecessors(list(ARMS.values()))


def previous_arms(wc):
    """The smaller arms of the same seed this arm continues from (finished first)."""
    return sorted({arm_tables(name) for name in PREVIOUS.get(wc.arm, {}).values()})


rule arm:
    # Continue the smaller arm's trainings where the inputs are the same (scaling.seed_checkpoints), then let
    # the inner Snakemake decide what of the arm is stale; --nolock because this outer run holds the lock.
    input:
        # ancient: only a missing marker makes an arm run (the inner Snakemake judges what of it is stale)
        configs=lambda wc: [ancient(path) for path in arm_configs(wc.arm)],
        previous=lambda wc: [ancient(path) for path in previous_arms(wc)],
        autoencoder=lambda wc: [ancient(FIXED_MANIFEST)] if ARMS[wc.arm].autoencoder else [],
    output:
        arm_tables("{arm}"),
    log:
        f"{OUT}/logs/{{arm}}.log",
    params:
        continues=lambda wc: " ".join(f"--continue {space}={os.path.join(RESULTS, source)}"
                                      for space, source in PREVIOUS.get(wc.arm, {}).items()),
        run=lambda wc: os.path.join(RESULTS, wc.arm),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    conda:
        "envs/lediflow.yaml"
    shell:
        "lediflow seed-checkpoints --run {params.run} {params.continues} > {log} 2>&1 && "
        "snakemake tables --cores {threads} --nolock --configfile {input.configs} >> {log} 2>&1"


# The fixed autoencoder belongs to its source arm's run (the main Snakefile's rule): declared here only while it
# is missing, since a second owner of an existing file makes Snakemake read the main Snakefile's records of it as
# changed and delete it (a finished source arm's tables are committed, its model is not: a fresh clone makes it).
if FIXED is not None and not os.path.exists(FIXED_MANIFEST):

    rule fixed_autoencoder:
        input:
            configs=[ancient(path) for path in arm_configs(FIXED.name)],
        output:
            FIXED_MANIFEST,
        log:
            f"{OUT}/logs/fixed_autoencoder.log",
        threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
        conda:
            "envs/lediflow.yaml"
        shell:
            "snakemake {output} --cores {threads} --nolock --configfile {input.configs} > {log} 2>&1"


# Runs that add OT-CFM to an arm of the same scale and seed (the x1 OT-CFM runs of workflow/methods.smk, which
# that workflow makes): read by the three-method table once finished, never made here.
METHOD_RUNS = [name for name in SPEC.get("method_runs", []) if os.path.exists(arm_tables(name))]


rule summary:
    input:
        [arm_tables(name) for name in ARMS],
        [ancient(arm_tables(name)) for name in METHOD_RUNS],
    output:
        md=f"{OUT}/scaling.md",
        csv=f"{OUT}/scaling.csv",
        cells=f"{OUT}/scaling_cells.md",
        runs=f"{OUT}/scaling_runs.csv",
    params:
        runs=" ".join(f"{RESULTS}/{name}" for name in ARMS),
        method_runs=" ".join(f"{RESULTS}/{name}" for name in METHOD_RUNS),
    log:
        f"{OUT}/logs/summary.log",
    conda:
        "envs/lediflow.yaml"
    shell:
        f"lediflow scaling --runs {{params.runs}} --method-runs {{params.method_runs}} --out {OUT} > {{log}} 2>&1"


rule cost:
    # The study's hours still to run, estimated from the default run's job times (not part of `all`):
    #   snakemake -s workflow/scaling.smk --cores 1 results/scaling/cost.md
    # --fresh-clone: cost.md is committed, so it must not depend on the checkpoints this checkout happens to hold.
    output:
        f"{OUT}/cost.md",
    log:
        f"{OUT}/logs/cost.log",
    conda:
        "envs/lediflow.yaml"
    shell:
        f"lediflow scaling-cost --fresh-clone --study {STUDY} --out {OUT} > {{log}} 2>&1"


rule cost_whole:
    # The whole study's price, every arm finished or not (a finished study's cost.md is all zeros):
    #   snakemake -s workflow/scaling.smk --cores 1 results/scaling/cost_whole.md
    output:
        f"{OUT}/cost_whole.md",
    log:
        f"{OUT}/logs/cost_whole.log",
    conda:
        "envs/lediflow.yaml"
    shell:
        f"lediflow scaling-cost --whole --study {STUDY} --out {OUT} > {{log}} 2>&1"
