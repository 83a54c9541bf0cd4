"""The image autoencoder of the latent variant: diffusers AutoencoderKL, loaded or trained (docs/method.md 2.4).

Latents are stored normalised: z_n = (z - shift_c) / scale_c with per-channel
constants measured on the training set, so the flow, the prior and the
latent sampler all see roughly unit-variance inputs.
"""

from __future__ import annotations

import warnings

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from torch import nn

from lediflow.core import artifacts

from lediflow.core.errors import LediflowError


def build_vae(cfg: dict[str, Any], channels: int, resolution: int) -> AutoencoderKL:
    levels = len(cfg["block_out_channels"])
    if resolution % 2 ** (levels - 1):
        raise LediflowError(f"resolution {resolution} cannot be halved {levels - 1} times; change autoencoder.block_out_channels")
    if any(c % cfg["norm_num_groups"] for c in cfg["block_out_channels"]):
        raise LediflowError("autoencoder.norm_num_groups must divide every autoencoder.block_out_channels entry")
    return AutoencoderKL(
        in_channels=channels, out_channels=channels, latent_channels=cfg["latent_channels"],
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg["block_out_channels"]), layers_per_block=cfg["layers_per_block"],
        norm_num_groups=cfg["norm_num_groups"], sample_size=resolution,
    )


def load_pretrained(name: str, subfolder: str | None, device: torch.device) -> AutoencoderKL:
    """From a local folder (never downloads; weights checked against a manifest where one records them, as the
    trained autoencoder's does: the pipeline requires it there) or a hub id (local cache first, then the hub)."""
    local = Path(name).is_dir()
    for weights in sorted(Path(name, subfolder or "").glob("*.safetensors")) if local else []:
        artifacts.verify_file(weights, required=False)  # a user's folder: checked where a manifest records it
    try:
        with warnings.catch_warnings():  # hub deprecation notices are not the user's business: one line or none
            warnings.simplefilter("ignore")
            # low_cpu_mem_usage=False: the accelerate-less default prints a multi-line notice and changes nothing
            vae = AutoencoderKL.from_pretrained(name, subfolder=subfolder, local_files_only=local,
                                                low_cpu_mem_usage=False)
    except OSError as exc:
        hint = "check the folder" if local else "run once with a network, or set autoencoder.pretrained to a local folder"
        raise LediflowError(f"cannot load AutoencoderKL {name!r} ({str(exc).splitlines()[0][:120]}); {hint}") from None
    return vae.to(device).eval().requires_grad_(False)


class VAETrainingWrapper(nn.Module):
    """forward(x, eps) -> (reconstruction, KL per sample): one forward() so DDP sees the whole graph."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * eps  # z ~ q(z | x)
        return self.vae.decode(z).sample, posterior.kl()


def latent_shape(vae: AutoencoderKL, resolution: int) -> tuple[int, int, int]:
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return vae.config.latent_channels, resolution // factor, resolution // factor


class LatentCodec:
    """Normalised latents <-> images in [-1, 1] with a frozen AutoencoderKL."""

    def __init__(self, vae: AutoencoderKL, shift: torch.Tensor, scale: torch.Tensor) -> None:
        self.vae = vae
        self.shift = shift.view(1, -1, 1, 1)
        self.scale = scale.view(1, -1, 1, 1)

    @classmethod
    def load(cls, latents_dir: Path, device: torch.device) -> "LatentCodec":
        rebuild = "run `lediflow encode-latents` (or snakemake) first"
        norm = artifacts.read_json(artifacts.verify_file(latents_dir / "norm.json", rebuild), rebuild)
        vae = load_pretrained(norm["vae_dir"], norm.get("subfolder"), device)
        return cls(vae, torch.tensor(norm["shift"], device=device), torch.tensor(norm["scale"], device=device))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and std of q(z | x), normalised."""
        posterior = self.vae.encode(x).latent_dist
        return (posterior.mean - self.shift) / self.scale, posterior.std / self.scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z * self.scale + self.shift).sample
