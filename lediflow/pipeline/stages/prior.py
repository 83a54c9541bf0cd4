"""Stages of the learned prior: train-prior (theta_E, theta_D) and train-latent-sampler."""

from __future__ import annotations

import torch

from lediflow.core import artifacts

from lediflow.pipeline import paths

from lediflow.method import seeding
from lediflow.method.checkpoint import load_model
from lediflow.pipeline.config import Params
from lediflow.pipeline.budget import train_section
from lediflow.method.flow_matching import flow_matching_loss, sample_time
from lediflow.method.networks.auxiliary import AuxiliaryModel
from lediflow.method.networks.latent_mlp import LatentVelocityMLP
from lediflow.method.prior_loss import prior_loss, reparameterize
from lediflow.pipeline.sources import ImageSource, LatentSource
from lediflow.method.device import resolve_device
from lediflow.pipeline.stages.common import training_data
from lediflow.pipeline.stages.common import TrainingJob, data_fingerprint, data_options, file_hash, job_runtime, run_training
from lediflow.method.trainer import TrainConfig, init_distributed, world


def input_fingerprint(params: Params, space: str) -> str:
    """Identity of what the models of `space` learn from: the train images, or the stored latents."""
    if space == "pixel":
        return data_fingerprint(paths.data_dir(params))
    manifest = artifacts.read_manifest(paths.latents_dir(params), "run `lediflow encode-latents` (or snakemake) first")
    return manifest["files"]["train_mean.npy"]["sha256"]


def train_prior(params: Params, space: str = "pixel", progress: bool = True) -> dict:
    device = resolve_device(params["run"]["device"])
    init_distributed(device)
    cfg, train_cfg = params["prior"], TrainConfig.from_params(train_section(params, "prior"))
    data = training_data(params, space, "train", device)
    channels, resolution = data.shape[0], data.shape[1]
    seeding.seed_model_init(params["run"]["seed"])  # weights start the same in every run
    model = AuxiliaryModel(resolution, channels, cfg["z_dim"], cfg["channels"], cfg["logvar_min"], cfg["logvar_max"])
    per_rank = train_cfg.batch_size // world()[1]

    def loss_fn(net: torch.nn.Module, gen: torch.Generator):
        y = data.batch(gen, per_rank)
        eps_z = torch.randn((per_rank, cfg["z_dim"]), generator=gen, device=device)
        out = prior_loss(net, y, eps_z, cfg["loss"], cfg["kl_weight"], cfg["beta"])
        return out.total, {"reconstruction": out.reconstruction.item(), "kl": out.kl.item(), "mse": out.mse.item()}

    data_hash = input_fingerprint(params, space)
    return run_training(TrainingJob(
        model, "auxiliary", loss_fn, paths.model_dir(params, paths.prior_name(space)), train_cfg,
        params["run"]["seed"], device,
        fingerprint={"data": data_hash, "seed": params["run"]["seed"], "prior": cfg, **data_options(params, space)},
        stage="train-prior", params_used={"run": params["run"], "prior": cfg},
        weights={"train_input_sha256": data_hash}, extra={"space": space}, **job_runtime(params, data, device),
    ), progress)


@torch.no_grad()
def encode_posteriors(prior: AuxiliaryModel, data: ImageSource | LatentSource, generator: torch.Generator,
                      batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu_E, logvar_E) of every training image; in latent space of one posterior sample of each image's
    latent (what the prior and the flow train on), in pixel space of the image itself."""
    mus, logvars = [], []
    for start in range(0, len(data), batch):
        mu, logvar = prior.encode(data.sample_slice(start, min(len(data), start + batch), generator))
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(mus), torch.cat(logvars)


def aggregate_statistics(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of the aggregate posterior (1/N) sum_i q(z | y_i) = N(mu_i, sigma_i^2):
    E z = mean_i mu_i, Var z = mean_i (mu_i^2 + sigma_i^2) - (E z)^2 (law of total variance)."""
    shift = mu.mean(0)
    var = (mu.square() + logvar.exp()).mean(0) - shift.square()
    return shift, var.clamp_min(1e-12).sqrt()


def train_latent_sampler(params: Params, space: str = "pixel", progress: bool = True) -> dict:
    """Flow matching from N(0, I) to the aggregate posterior of z, z ~ q(z | y) over the training set."""
    device = resolve_device(params["run"]["device"])
    init_distributed(device)
    cfg, train_cfg = params["latent_sampler"], TrainConfig.from_params(train_section(params, "latent_sampler"))
    prior_dir = paths.model_dir(params, paths.prior_name(space))
    prior = load_model(prior_dir, device)
    data = training_data(params, space, "train", device)
    stats_gen = seeding.generator(device, params["run"]["seed"], seeding.STREAM_STATS)
    mu, logvar = encode_posteriors(prior, data, stats_gen)
    seeding.seed_model_init(params["run"]["seed"])  # weights start the same in every run
    model = LatentVelocityMLP(prior.z_dim, cfg["hidden"], cfg["depth"], cfg["standardize"])
    if cfg["standardize"]:
        model.set_statistics(*aggregate_statistics(mu, logvar))
    per_rank = train_cfg.batch_size // world()[1]

    def posterior_batch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if space == "pixel":  # images are fixed: their posteriors are encoded once, above
            idx = torch.randint(len(mu), (per_rank,), generator=gen, device=device)
            return mu[idx], logvar[idx]
        with torch.no_grad():  # latents are posterior samples drawn afresh, as the prior and the flow see them
            return prior.encode(data.batch(gen, per_rank))

    def loss_fn(net: torch.nn.Module, gen: torch.Generator):
        mu_b, logvar_b = posterior_batch(gen)
        z1 = reparameterize(mu_b, logvar_b, torch.randn(mu_b.shape, generator=gen, device=device))
        z1 = model.to_standard(z1)  # z ~ aggregate posterior, in the sampler's coordinates
        z0 = torch.randn(z1.shape, generator=gen, device=device)
        t = sample_time(per_rank, gen, device)
        return flow_matching_loss(net, z0, z1, t).total, {}

    prior_hash = file_hash(prior_dir / "model.safetensors")
    return run_training(TrainingJob(
        model, "latent_mlp", loss_fn, paths.model_dir(params, paths.latent_sampler_name(space)), train_cfg,
        params["run"]["seed"],
        device, fingerprint={"prior": prior_hash, "seed": params["run"]["seed"], "latent_sampler": cfg},
        stage="train-latent-sampler", params_used={"run": params["run"], "latent_sampler": cfg},
        weights={"prior": prior_hash}, extra={"space": space}, **job_runtime(params, data, device),
    ), progress)

