"""train-autoencoder and encode-latents: the latent variant's autoencoder and its stored latents."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lediflow.core import artifacts

from lediflow.pipeline import paths

from lediflow.method import seeding
from lediflow.method.autoencoder import (LatentCodec, VAETrainingWrapper, build_vae, latent_shape, load_pretrained)
from lediflow.pipeline.config import Params
from lediflow.pipeline.budget import train_section
from lediflow.pipeline.images import save_grid
from lediflow.pipeline.sources import ImageSource
from lediflow.method.device import resolve_device
from lediflow.pipeline.stages.common import training_data
from lediflow.pipeline.stages.common import data_fingerprint, data_options, job_runtime, numerics_record
from lediflow.method.trainer import TrainConfig, Trainer, init_distributed, world


def _vae_weights_hash(folder: str) -> str:
    """sha256 of a local AutoencoderKL's weights file; "remote" for a hub id."""
    files = sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin"))
    return artifacts.sha256_file(files[0]) if files else "remote"


def train_autoencoder(params: Params, progress: bool = True) -> dict:
    """source train: fit a small AutoencoderKL (MSE + kl_weight * KL); source pretrained: record where it is."""
    cfg = params["autoencoder"]
    folder = paths.autoencoder_dir(params)
    if cfg["source"] == "pretrained":
        device = resolve_device(params["run"]["device"])
        load_pretrained(cfg["pretrained"], cfg["subfolder"], device)  # fail now, not three stages later
        folder.mkdir(parents=True, exist_ok=True)
        return artifacts.write_manifest(folder, "train-autoencoder", {"autoencoder": cfg},
                                        extra={"vae_dir": cfg["pretrained"], "subfolder": cfg["subfolder"]})
    device = resolve_device(params["run"]["device"])
    init_distributed(device)
    data = training_data(params, "pixel", "train", device)
    channels, resolution = data.shape[0], data.shape[1]
    seeding.seed_model_init(params["run"]["seed"])  # weights start the same in every run
    wrapper = VAETrainingWrapper(build_vae(cfg, channels, resolution))
    z_shape = latent_shape(wrapper.vae, resolution)
    train_cfg = TrainConfig.from_params(train_section(params, "autoencoder"))
    per_rank = train_cfg.batch_size // world()[1]

    def loss_fn(net: torch.nn.Module, gen: torch.Generator):
        x = data.batch(gen, per_rank)
        recon, kl = net(x, torch.randn((per_rank, *z_shape), generator=gen, device=device))
        mse = ((recon - x) ** 2).mean()
        # MSE per pixel + kl_weight * KL per pixel (the beta-VAE objective of a KL autoencoder)
        return mse + cfg["kl_weight"] * kl.mean() / x[0].numel(), {"mse": mse.item()}

    fingerprint = {"data": data_fingerprint(paths.data_dir(params)), "seed": params["run"]["seed"],
                   "autoencoder": cfg, **data_options(params, "pixel")}
    trainer = Trainer(wrapper, loss_fn, folder, train_cfg, params["run"]["seed"], device, fingerprint,
                      desc="autoencoder", progress=progress, **job_runtime(params, data, device))
    result = trainer.fit()
    if world()[0] != 0:
        return {}
    wrapper.load_state_dict(trainer.ema)
    with artifacts.staged_dir(folder / "vae") as stage:
        wrapper.vae.save_pretrained(stage)
    return artifacts.write_manifest(folder, "train-autoencoder", {"run": params["run"], "autoencoder": cfg},
                                    extra={"vae_dir": str(folder / "vae"), "training": result.__dict__,
                                           "fingerprint": fingerprint, **numerics_record(trainer.numerics)})


def _vae_location(params: Params) -> tuple[str, str | None]:
    manifest = artifacts.read_manifest(paths.autoencoder_dir(params),
                                       "run `lediflow train-autoencoder` (or snakemake) first")
    return manifest["vae_dir"], manifest.get("subfolder")


@torch.no_grad()
def encode_latents(params: Params) -> dict:
    """Posterior mean/std of every image of both splits, normalised per channel by train statistics."""
    cfg = params["autoencoder"]
    device = resolve_device(params["run"]["device"])
    vae_dir, subfolder = _vae_location(params)
    vae = load_pretrained(vae_dir, subfolder, device)
    raw: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split in ("train", "test"):
        data = ImageSource(paths.data_dir(params), split, device)
        means, stds = [], []
        for start in range(0, len(data), cfg["encode_batch_size"]):
            posterior = vae.encode(data.slice(start, min(len(data), start + cfg["encode_batch_size"]))).latent_dist
            means.append(posterior.mean.cpu())
            stds.append(posterior.std.cpu())
        raw[split] = (torch.cat(means), torch.cat(stds))
    mean, std = raw["train"]
    shift = mean.double().mean(dim=(0, 2, 3))
    # Var of a sampled latent = Var(posterior mean) + E[posterior variance], per channel.
    variance = mean.double().var(dim=(0, 2, 3)) + (std.double() ** 2).mean(dim=(0, 2, 3))
    scale = variance.sqrt()
    codec = LatentCodec(vae, shift.float().to(device), scale.float().to(device))
    test_images = ImageSource(paths.data_dir(params), "test", device)
    mse_sum, count = 0.0, 0
    for start in range(0, len(test_images), cfg["encode_batch_size"]):
        stop = min(len(test_images), start + cfg["encode_batch_size"])
        x = test_images.slice(start, stop)
        z = ((raw["test"][0][start:stop].to(device)) - codec.shift) / codec.scale
        mse_sum += float(((codec.decode(z).clamp(-1, 1) - x) ** 2).sum())
        count += x.numel()
    mse = mse_sum / count
    psnr = 10 * math.log10(4.0 / mse)  # data range [-1, 1]: peak-to-peak 2
    folder = paths.latents_dir(params)
    with artifacts.staged_dir(folder) as stage:
        for split, (m, s) in raw.items():
            np.save(stage / f"{split}_mean.npy", ((m - shift.float().view(1, -1, 1, 1)) / scale.float().view(1, -1, 1, 1)).numpy())
            np.save(stage / f"{split}_std.npy", (s / scale.float().view(1, -1, 1, 1)).numpy())
        artifacts.write_json_atomic(stage / "norm.json", {"shift": shift.tolist(), "scale": scale.tolist(),
                                                          "vae_dir": str(vae_dir), "subfolder": subfolder})
        x = test_images.slice(0, 16)
        recon = codec.decode(codec.encode(x)[0]).clamp(-1, 1)
        save_grid(stage / "reconstructions.png", torch.cat([x, recon]), nrow=16)
        return artifacts.write_manifest(stage, "encode-latents", {"run": params["run"], "autoencoder": cfg},
                                        weights={"vae": _vae_weights_hash(vae_dir)},
                                        extra={"latent_shape": list(raw["train"][0].shape[1:]),
                                               "test_mse": mse, "test_psnr_db": psnr,
                                               "reconstruction_rows": ["test images", "decode(encode mean)"]})
