"""train-flow: the DiT velocity model from the Gaussian (baseline), Gaussian with OT pairing (OT-CFM) or the
learned prior (paired with each image, or, as an ablation, its own draws paired by OT: flow.learned_coupling)."""

from __future__ import annotations

import torch

from lediflow.pipeline import paths

from lediflow.method import seeding
from lediflow.method.checkpoint import load_model
from lediflow.pipeline.config import Params
from lediflow.method.flow_matching import (flow_matching_loss, gaussian_coupling, learned_coupling, ot_coupling,
                                           prior_ot_coupling, sample_time)
from lediflow.method.learned_prior import LearnedPrior
from lediflow.pipeline.budget import flow_model_config
from lediflow.method.networks.dit import build_dit
from lediflow.method.device import resolve_device
from lediflow.pipeline.stages.common import training_data
from lediflow.pipeline.stages.common import TrainingJob, data_options, file_hash, job_runtime, run_training
from lediflow.pipeline.stages.prior import input_fingerprint
from lediflow.method.trainer import TrainConfig, init_distributed, world


def train_flow(params: Params, space: str, prior: str, progress: bool = True) -> dict:
    device = resolve_device(params["run"]["device"])
    init_distributed(device)
    cfg = flow_model_config(params, space, prior)
    train_cfg = TrainConfig.from_params(cfg["train"])
    data = training_data(params, space, "train", device)
    channels, resolution = data.shape[0], data.shape[1]
    seeding.seed_model_init(params["run"]["seed"])  # weights start the same in every run
    model = build_dit(cfg["model"], resolution, channels, cfg["patch_size"])
    per_rank = train_cfg.batch_size // world()[1]
    fingerprint = {"data": input_fingerprint(params, space), "seed": params["run"]["seed"], "flow": cfg,
                   "space": space, "prior": prior, **data_options(params, space)}
    weights: dict[str, str] = {"train_input_sha256": fingerprint["data"]}
    auxiliary, draws = None, None
    if prior == "learned":
        prior_dir = paths.model_dir(params, paths.prior_name(space))
        auxiliary = load_model(prior_dir, device)  # frozen while the flow trains
        weights["prior"] = fingerprint["prior_model"] = file_hash(prior_dir / "model.safetensors")
        fingerprint["std_scale"] = params["prior"]["std_scale"]
        if params["flow"]["learned_coupling"] == "ot_draws":  # only then in the fingerprint: paired runs resume
            sampler_dir = paths.model_dir(params, paths.latent_sampler_name(space))
            draws = LearnedPrior.load(prior_dir, sampler_dir, params, device)
            fingerprint["coupling"] = "ot_draws"
            if draws.sampler is not None:
                weights["latent_sampler"] = fingerprint["latent_sampler_model"] = file_hash(
                    sampler_dir / "model.safetensors")

    def loss_fn(net: torch.nn.Module, gen: torch.Generator):
        x1 = data.batch(gen, per_rank)
        if prior == "ot":
            x0 = ot_coupling(x1, gen)
        elif auxiliary is None:
            x0 = gaussian_coupling(x1, gen)
        elif draws is not None:
            x0 = prior_ot_coupling(x1, draws, gen)
        else:
            x0 = learned_coupling(x1, auxiliary, params["prior"]["std_scale"], gen)
        t = sample_time(per_rank, gen, device, cfg["time_sampling"], cfg["logit_normal_mean"], cfg["logit_normal_std"])
        return flow_matching_loss(net, x0, x1, t).total, {}

    return run_training(TrainingJob(
        model, "dit", loss_fn, paths.model_dir(params, paths.flow_name(space, prior)), train_cfg,
        params["run"]["seed"], device, fingerprint, stage="train-flow",
        params_used={"run": params["run"], "flow": cfg, **({"prior": params["prior"]} if prior == "learned" else {}),
                     **({"learned_coupling": "ot_draws"} if draws is not None else {})},
        weights=weights,
        extra={"space": space, "prior": prior}, **job_runtime(params, data, device),
    ), progress)
