# Shared helpers for rule files. PARAMS, RUN_DIR and PARAMS_FILE come from the Snakefile;
# every path comes from lediflow.paths, the table dvc.yaml is generated from too.
from lediflow import paths
from lediflow.flow_budget import flow_model_config


def lediflow_cmd(stage, extra=""):
    """The CLI call every rule makes: one stage, reading the run's resolved params."""
    # OMP_NUM_THREADS={threads}: torch uses the cores Snakemake gave the job, so parallel jobs do not fight.
    return f"OMP_NUM_THREADS={{threads}} lediflow {stage} --config {PARAMS_FILE} {extra}".rstrip()


def train_cmd(stage, extra=""):
    """Training stages: plain lediflow, or torchrun with one process per GPU when resources.gpus > 1 (DDP)."""
    launch = (
        "if [ {resources.gpus} -gt 1 ]; then L='torchrun --standalone --nproc_per_node {resources.gpus} "
        "-m lediflow.cli'; else L=lediflow; fi; "
    )
    return launch + f"OMP_NUM_THREADS={{threads}} $L {stage} --config {PARAMS_FILE} {extra}".rstrip()


def model_files(name):
    """The declared outputs of a trained model folder (its checkpoints/ stay undeclared, for resume)."""
    folder = paths.model_dir(PARAMS, name)
    return {
        "model": f"{folder}/model.safetensors",
        "arch": f"{folder}/arch.json",
        "manifest": f"{folder}/manifest.json",
    }


def log_file(name):
    return f"{RUN_DIR}/logs/{name}.log"


def bench_file(name):
    """Snakemake's per-job benchmark (wall time, peak RSS), beside the logs."""
    return f"{RUN_DIR}/benchmarks/{name}.tsv"


wildcard_constraints:
    space="pixel|latent",
    prior="gaussian|learned|ot",


# Data options that change what a model learns but not the prepared dataset (data.workers changes neither).
TRAINING_ONLY_DATA_KEYS = ("workers", "hflip")


def with_options(section, space, training=True):
    """A rule's params plus the run-wide options that change its result (data.hflip for pixel-space training,
    run.precision, run.train_scale), added only where they differ from their defaults, so that runs made before the options
    existed are not re-made."""
    extra = {}
    if training and space == "pixel" and PARAMS["data"]["hflip"]:
        extra["hflip"] = True
    if PARAMS["run"]["precision"] != "fp32":
        extra["precision"] = PARAMS["run"]["precision"]
    if PARAMS["run"]["train_scale"] != 1:
        extra["train_scale"] = PARAMS["run"]["train_scale"]
    return {**section, **extra} if extra else section
