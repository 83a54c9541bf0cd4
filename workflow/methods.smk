# Three sources side by side: the default run's Gaussian baseline and LeDiFlow, and OT-CFM (the Gaussian
# source paired with each batch by exact minibatch optimal transport). Each OT-CFM arm is an ordinary run of
# the main Snakefile with configs/methods/<arm>.yaml overlaid on params.yaml (flow.priors: [ot], the rest the
# default run's), so its cells share the default run's data, reference, sample seeds and scorer.
#   snakemake -s workflow/methods.smk -n            # what is still to run
#   snakemake -s workflow/methods.smk --cores all   # the arms, then results/methods/methods.md
import os

from lediflow.pipeline.config import load_params

BASE = load_params(["params.yaml"])
RESULTS = BASE["run"]["results_dir"]
DEFAULT = os.path.join(RESULTS, BASE["run"]["name"])
ARMS = config.get("arms", ["otcfm-pixel", "otcfm-latent"])
OUT = config.get("out", os.path.join(RESULTS, "methods"))


# run name -> the arm's config: each arm is the run its overlay names
RUNS = {load_params(["params.yaml", f"configs/methods/{arm}.yaml"])["run"]["name"]: f"configs/methods/{arm}.yaml"
        for arm in ARMS}
# a latent arm loads the default run's trained autoencoder (autoencoder.pretrained), so every latent method
# shares one latent space; it is made first, by the default run's own rule
SHARED_AUTOENCODER = os.path.join(DEFAULT, "models", "autoencoder")


def shared_autoencoder(run):
    arm = load_params(["params.yaml", RUNS[run]])["autoencoder"]
    uses = arm["source"] == "pretrained" and os.path.normpath(str(arm["pretrained"])).startswith(SHARED_AUTOENCODER)
    return [os.path.join(SHARED_AUTOENCODER, "manifest.json")] if uses else []


def tables_of(run):
    """The file that marks a run finished: its tables (committed, so a fresh clone does not redo the arm)."""
    return os.path.join(RESULTS, run, "tables", "scores_long.csv")


# the main Snakefile's image (conda environment inside it): `--software-deployment-method conda apptainer`
container: "docker://continuumio/miniconda3:24.7.1-0"


rule all:
    default_target: True
    input:
        os.path.join(OUT, "methods.md"),
        # every arm as a target too: Snakemake (>= 7.7) does not re-make a missing input of a job whose
        # output exists, so an arm added to the list would otherwise never run; once it has, its newer
        # tables re-make the methods table
        [tables_of(run) for run in RUNS],
        os.path.join(OUT, "ot_pairing.md"),


wildcard_constraints:
    run="|".join(RUNS) or "(?!)",


rule arm:
    # The inner Snakemake decides what of the arm is stale; --nolock because this outer run holds the lock.
    input:
        config=lambda wc: ancient(RUNS[wc.run]),
        autoencoder=lambda wc: [ancient(path) for path in shared_autoencoder(wc.run)],
    output:
        tables_of("{run}"),
    log:
        os.path.join(OUT, "logs", "{run}.log"),
    threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
    conda:
        "envs/lediflow.yaml"
    shell:
        "snakemake tables --cores {threads} --nolock --configfile {input.config} > {log} 2>&1"


# The default run's files (its tables, autoencoder and priors) belong to the main Snakefile. This workflow
# declares a rule that makes one only while it is missing: a second rule owning an existing file makes Snakemake
# read the main Snakefile's records of it as "code and params changed" and delete it to make it again (a trained
# autoencoder or prior among them). Keep the default run current with the main Snakefile.
DEFAULT_TABLES = tables_of(BASE["run"]["name"])
PRIOR_MODELS = [os.path.join(DEFAULT, "models", f"{kind}-{space}", "manifest.json")
                for space in BASE["flow"]["spaces"] for kind in ("prior", "latent_sampler")]

if not os.path.exists(DEFAULT_TABLES):

    rule default_run:
        # The default run's own tables (snakemake --cores all); a fresh clone has them committed.
        output:
            DEFAULT_TABLES,
        log:
            os.path.join(OUT, "logs", "default.log"),
        threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
        conda:
            "envs/lediflow.yaml"
        shell:
            "snakemake tables --cores {threads} --nolock > {log} 2>&1"


if not os.path.exists(os.path.join(SHARED_AUTOENCODER, "manifest.json")):

    rule default_autoencoder:
        # The default run's autoencoder alone (its own rule in the main Snakefile), for the latent arms.
        output:
            os.path.join(SHARED_AUTOENCODER, "manifest.json"),
        log:
            os.path.join(OUT, "logs", "default_autoencoder.log"),
        threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
        conda:
            "envs/lediflow.yaml"
        shell:
            "snakemake {output} --cores {threads} --nolock > {log} 2>&1"


if not all(os.path.exists(path) for path in PRIOR_MODELS):

    rule default_priors:
        # The default run's learned priors alone (their own rules in the main Snakefile), for the OT-pairing study.
        output:
            PRIOR_MODELS,
        log:
            os.path.join(OUT, "logs", "default_priors.log"),
        threads: lambda wildcards: workflow.cores  # at job time: `snakemake --unlock` needs no --cores
        conda:
            "envs/lediflow.yaml"
        shell:
            "snakemake {output} --cores {threads} --nolock > {log} 2>&1"


rule methods:
    input:
        default=ancient(DEFAULT_TABLES),
        arms=[ancient(tables_of(run)) for run in RUNS],
    output:
        md=os.path.join(OUT, "methods.md"),
        csv=os.path.join(OUT, "methods.csv"),
    params:
        runs=" ".join([DEFAULT] + [os.path.join(RESULTS, run) for run in RUNS]),
    log:
        os.path.join(OUT, "logs", "methods.log"),
    conda:
        "envs/lediflow.yaml"
    shell:
        f"lediflow methods --runs {{params.runs}} --out {OUT} > {{log}} 2>&1"


# Does minibatch OT help the learned prior? The transport cost of every coupling on the default run's training
# batches (lediflow/studies/ot_pairing.py): no flow is trained, only the default run's priors are read.
rule ot_pairing:
    input:
        [ancient(path) for path in PRIOR_MODELS],
    output:
        md=os.path.join(OUT, "ot_pairing.md"),
        csv=os.path.join(OUT, "ot_pairing.csv"),
    params:
        batches=config.get("ot_pairing_batches", 20),
    log:
        os.path.join(OUT, "logs", "ot_pairing.log"),
    conda:
        "envs/lediflow.yaml"
    shell:
        f"lediflow ot-pairing --config {os.path.join(DEFAULT, 'params.yaml')} --batches {{params.batches}} "
        f"--out {OUT} > {{log}} 2>&1"
