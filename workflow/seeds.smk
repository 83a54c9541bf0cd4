# Precision and recall over seeds at each flow's best cell. Seed 0 is a run scored in every cell (the default
# run); each other seed re-makes a scaling arm under its own name (an ordinary run of the main Snakefile with the
# arm's params, checked equal bar the name) at the two cells the study compares, and only those.
#   snakemake -s workflow/seeds.smk -n              # the arms still to make
#   snakemake -s workflow/seeds.smk --cores all     # the arms, then results/seeds/seeds.md
#   snakemake -s workflow/seeds.smk --cores all --config study=my_study.yaml
import os
import sys

from lediflow.studies import seed_quality
from lediflow.core.errors import LediflowError

try:
    SPEC = seed_quality.load_spec(config.get("study", "configs/seeds/study.yaml"))
    TARGETS = seed_quality.targets(SPEC)
    RUNS_TABLE = seed_quality.read_runs_table(SPEC)
    ROOT = str(seed_quality.results_dir(SPEC))
except LediflowError as exc:
    sys.exit(f"lediflow: error: {exc}")
CONFIGS = {name: arm["config"] for name, arm in zip(TARGETS, SPEC["arms"])}
OUT = SPEC["out"]
SEED0 = [os.path.join(ROOT, SPEC["seed0"], "scores", model, f"{setting}.json")
         for _, model, setting in seed_quality.best_cells(RUNS_TABLE, SPEC["seed0"])]


def done(run):
    """The file that marks an arm made: written after its inner run made every best cell (committed with them)."""
    return os.path.join(ROOT, run, "scores", "complete")


# the main Snakefile's image (conda environment inside it): `--software-deployment-method conda apptainer`
container: "docker://continuumio/miniconda3:24.7.1-0"


rule all:
    default_target: True
    input:
        os.path.join(OUT, "seeds.md"),
        # the arms as targets too: Snakemake does not re-make a missing input of a job whose output exists
        [done(run) for run in TARGETS],


wildcard_constraints:
    run="|".join(TARGETS) or "(?!)",


rule arm:
    # The inner Snakemake makes the best cells' score files (and what they need); --nolock because this outer run
    # holds the lock on the same working directory. A cut arm resumes its trainers from their checkpoints.
    input:
        configs=SPEC["configs"],
        arm=lambda wc: CONFIGS[wc.run],
    output:
        done("{run}"),
    params:
        targets=lambda wc: " ".join(TARGETS[wc.run]),
    log:
        os.path.join(OUT, "logs", "{run}.log"),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    conda:
        "envs/lediflow.yaml"
    shell:
        "snakemake {params.targets} --cores {threads} --nolock --configfile {input.configs} {input.arm} "
        "> {log} 2>&1 && touch {output}"


# The seed-0 run's score files belong to the main Snakefile (a second owner would make Snakemake re-make them);
# this rule exists only while one is missing, as in workflow/methods.smk.
if not all(os.path.exists(path) for path in SEED0):

    rule seed0:
        output:
            SEED0,
        log:
            os.path.join(OUT, "logs", "seed0.log"),
        threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
        conda:
            "envs/lediflow.yaml"
        shell:
            "snakemake {output} --cores {threads} --nolock > {log} 2>&1"


rule table:
    input:
        seed0=[ancient(path) for path in SEED0],
        arms=[done(run) for run in TARGETS],
        runs_table=ancient(SPEC["runs_table"]),
    output:
        md=os.path.join(OUT, "seeds.md"),
        csv=os.path.join(OUT, "seeds.csv"),
        long=os.path.join(OUT, "seeds_long.csv"),
    params:
        study=config.get("study", "configs/seeds/study.yaml"),
    log:
        os.path.join(OUT, "logs", "seeds.log"),
    conda:
        "envs/lediflow.yaml"
    shell:
        "lediflow seed-quality --study {params.study} > {log} 2>&1"
