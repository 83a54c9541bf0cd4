"""Which params define one flow model, and how long each network trains (run.train_scale, the equal-compute
baseline).

Light on imports: the Snakefile reads it at parse time.
"""

from __future__ import annotations

from lediflow.pipeline.config import Params

# Flow keys that choose which models exist or how long the baseline trains, not how one model learns;
# the two patch sizes are left out here and the one of the model's space is put back below. learned_coupling
# concerns the learned flow alone and joins its identity only where it is not the default (train_flow).
_SWEEP_KEYS = ("spaces", "priors", "baseline_extra_steps", "patch_size", "latent_patch_size", "learned_coupling")


def scaled_steps(params: Params, steps: int) -> int:
    """run.train_scale times `steps`, rounded (at least 1): one knob lengthens every network's training together."""
    return max(1, round(steps * params["run"]["train_scale"]))


def train_section(params: Params, section: str) -> dict:
    """A trained section's `train` settings (autoencoder, prior, latent_sampler) with its steps scaled."""
    train = params[section]["train"]
    return {**train, "steps": scaled_steps(params, train["steps"])}


def flow_steps(params: Params, prior: str) -> int:
    """The baselines (Gaussian, OT-CFM) get baseline_extra_steps more, to match the learned pipeline's compute
    (both scaled)."""
    steps = scaled_steps(params, params["flow"]["train"]["steps"])
    extra = params["flow"]["baseline_extra_steps"] if prior in ("gaussian", "ot") else 0
    return steps + (scaled_steps(params, extra) if extra else 0)


def flow_model_config(params: Params, space: str, prior: str) -> dict:
    """The flow params that define the one model (space, prior), with its patch size and step budget resolved.

    Snakemake's params trigger and the trainer's resume fingerprint both read this, so raising
    baseline_extra_steps extends the baseline alone and leaves the learned flows (and their samples) as they are.
    """
    cfg = params["flow"]
    own = {k: v for k, v in cfg.items() if k not in _SWEEP_KEYS}
    own["patch_size"] = cfg["patch_size"] if space == "pixel" else cfg["latent_patch_size"]
    own["train"] = {**cfg["train"], "steps": flow_steps(params, prior)}
    return own
