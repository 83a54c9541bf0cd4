"""Which params define one flow model, and how long it trains (the equal-compute baseline).

Light on imports: the Snakefile reads it at parse time.
"""

from __future__ import annotations

from lediflow.config import Params

# Flow keys that choose which models exist or how long the baseline trains, not how one model learns;
# the two patch sizes are left out here and the one of the model's space is put back below.
_SWEEP_KEYS = ("spaces", "priors", "baseline_extra_steps", "patch_size", "latent_patch_size")


def flow_steps(params: Params, prior: str) -> int:
    """The baseline gets baseline_extra_steps more, to match the learned pipeline's compute."""
    steps = params["flow"]["train"]["steps"]
    return steps + (params["flow"]["baseline_extra_steps"] if prior == "gaussian" else 0)


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
