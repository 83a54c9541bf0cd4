# Shared helpers for rule files. PARAMS, RUN_DIR and PARAMS_FILE come from the Snakefile;
# every path comes from lediflow.pipeline.paths, the table dvc.yaml is generated from too.
from lediflow.pipeline import paths
from lediflow.pipeline.budget import flow_model_config


def lediflow_cmd(stage, extra=""):
    """The CLI call of every Snakemake job: one stage, reading the run's resolved params."""
    # OMP_NUM_THREADS={threads}: torch uses the cores Snakemake gave the job, so parallel jobs do not fight.
    return f"OMP_NUM_THREADS={{threads}} lediflow {stage} --config {PARAMS_FILE} {extra}".rstrip()


def train_cmd(stage, extra=""):
    """Training stages: plain lediflow, or torchrun with one process per GPU when resources.gpus > 1 (DDP)."""
    launch = (
        "if [ {resources.gpus} -gt 1 ]; then L='torchrun --standalone --nproc_per_node {resources.gpus} "
        "-m lediflow.cli'; else L=lediflow; fi; "
    )
    return launch + f"OMP_NUM_THREADS={{threads}} $L {stage} --config {PARAMS_FILE} {extra}".rstrip()


def model_inputs(name):
    """A trained model as a later rule's input: its weights and its manifest, so a deleted manifest (the record
    the weights are verified against) makes Snakemake rebuild the model instead of reading it unverified."""
    files = model_files(name)
    return [files["model"], files["manifest"]]


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


# flow rules
def flow_inputs(wildcards):
    inputs = {"data": space_inputs(wildcards.space)}
    if wildcards.prior == "learned" and PARAMS["flow"]["learned_coupling"] == "ot_draws":
        inputs["prior"] = learned_prior_inputs(wildcards.space)  # trains on the prior's draws: the sampler too
    elif wildcards.prior == "learned":
        inputs["prior"] = model_inputs(paths.prior_name(wildcards.space))
    return inputs


def learned_source(prior):
    """What a learned flow's training reads besides its flow config: the prior's std scale, and the coupling where
    it is not the paper's."""
    if prior != "learned":
        return None
    scale, coupling = PARAMS["prior"]["std_scale"], PARAMS["flow"]["learned_coupling"]
    return scale if coupling == "paired" else (scale, coupling)


# latents rules
def space_inputs(space):
    """What models of a space train on: the prepared images, or the stored latents."""
    return rules.prepare_data.output.manifest if space == "pixel" else rules.encode_latents.output.manifest


# prior rules
def learned_prior_inputs(space):
    """The models the learned prior of a space is drawn from (its latent sampler only when it is used)."""
    inputs = model_inputs(paths.prior_name(space))
    if PARAMS["prior"]["latent_sampler"] == "flow":
        inputs += model_inputs(paths.latent_sampler_name(space))
    if space == "latent":
        inputs.append(rules.encode_latents.output.norm)
    return inputs


# report rules
def second_reference_tables():
    """The tables re-made against the second reference split, where the run has one."""
    if not has_second_reference():
        return {}
    second = PARAMS["score"]["second_reference"]
    names = ("quality_vs_nfe", "speedup", "quality_ratio", "cost_ratio")
    return {f"{name}_second": f"{paths.tables_dir(PARAMS)}/{name}_{second}_reference.csv" for name in names}


# sample rules
SAMPLE_KEYS = ("num_samples", "batch_size", "grid_images")


# sample rules
def source_inputs(wildcards):
    """The flow model (not for a zero-step cell), the models its x0 comes from (learned prior), and the
    decoder (latent space)."""
    space, prior = paths.parse_flow_name(wildcards.model)
    zero_step = getattr(wildcards, "setting", None) in paths.ZERO_STEP_SETTINGS
    inputs = {} if zero_step else {"flow": model_inputs(wildcards.model)}
    if prior == "learned":
        inputs["prior"] = learned_prior_inputs(space)
    if space == "latent":
        inputs["norm"] = rules.encode_latents.output.norm
    return inputs


# sample rules
def timing_inputs(wildcards):
    """Both arms of a space with everything their samples are drawn from."""
    inputs = []
    for model in (paths.flow_name(wildcards.space, prior) for prior in PARAMS["flow"]["priors"]):
        inputs += [v for value in source_inputs(SimpleNamespace(model=model)).values()
                   for v in (value if isinstance(value, list) else [value])]
    return inputs


# sample rules
EXTRAS_KEYS = ("interpolation_pairs", "interpolation_points", "inpaint_images", "inpaint_mask", "extras_steps")


# sample rules
def extras_inputs(wildcards=None):
    return [*model_inputs(paths.flow_name("pixel", "learned")), *learned_prior_inputs("pixel")]


# sample rules
def extras_targets():
    """Interpolation and inpainting need the pixel-space LeDiFlow model."""
    if "learned" in PARAMS["flow"]["priors"] and "pixel" in PARAMS["flow"]["spaces"]:
        return [rules.interpolate.output[0], rules.inpaint.output.figure]
    return []


# score rules
REFERENCE_KEYS = ("reference_split", "second_reference", "reference_count", "inception_weights", "cmmd",
                  "clip_model", "clip_pretrained", "clip_weights", "bootstrap_resamples", "kid_subset_size",
                  "kid_subsets")


# score rules
def has_second_reference():
    """A second reference split is configured (and differs from the primary one)."""
    return len(paths.reference_splits(PARAMS)) > 1


# report rules
def equal_nfe_spaces():
    """Spaces where both flows exist and the sweep has Euler step counts, so the two can be drawn side by side."""
    both = {"gaussian", "learned"} <= set(PARAMS["flow"]["priors"])
    return PARAMS["flow"]["spaces"] if both and PARAMS["sample"]["steps"] else []
