"""Run-time helpers shared by the stages: device choice and image batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lediflow import artifacts
from lediflow.data import load_split
from lediflow.errors import LediflowError

_IN_MEMORY_BYTES = 2 << 30  # splits below 2 GiB are read into RAM; larger ones stay memory-mapped


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise LediflowError("run.device is cuda but no CUDA device is visible; set run.device: auto or cpu")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class ImageSource:
    """Random batches of one split, drawn with an explicit generator."""

    def __init__(self, data_folder: str | Path, split: str, device: torch.device) -> None:
        array = load_split(data_folder, split)
        self.images = np.array(array) if array.nbytes < _IN_MEMORY_BYTES else array
        self.device = device
        self.shape = tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, generator: torch.Generator, size: int) -> torch.Tensor:
        idx = torch.randint(len(self.images), (size,), generator=generator, device=generator.device).cpu().numpy()
        return to_model_range(torch.from_numpy(self.images[np.sort(idx)]).to(self.device))

    def slice(self, start: int, stop: int) -> torch.Tensor:
        return to_model_range(torch.from_numpy(np.array(self.images[start:stop])).to(self.device))


class LatentSource:
    """Random batches of latents z ~ q(z | x) of one split, from the stored posterior mean and std."""

    def __init__(self, latents_folder: str | Path, split: str, device: torch.device) -> None:
        folder = Path(latents_folder)
        hint = "run `lediflow encode-latents` (or snakemake) first"
        self.mean = torch.from_numpy(artifacts.load_npy(folder / f"{split}_mean.npy", hint, mmap=False)).to(device)
        self.std = torch.from_numpy(artifacts.load_npy(folder / f"{split}_std.npy", hint, mmap=False)).to(device)
        self.device = device
        self.shape = tuple(self.mean.shape[1:])

    def __len__(self) -> int:
        return len(self.mean)

    def batch(self, generator: torch.Generator, size: int) -> torch.Tensor:
        idx = torch.randint(len(self.mean), (size,), generator=generator, device=generator.device).to(self.device)
        eps = torch.randn((size, *self.shape), generator=generator, device=generator.device).to(self.device)
        return self.mean[idx] + self.std[idx] * eps  # a fresh posterior sample every time

    def slice(self, start: int, stop: int) -> torch.Tensor:
        """Posterior means (the deterministic encoding) of a range of images."""
        return self.mean[start:stop]


def training_data(params: dict, space: str, split: str, device: torch.device) -> "ImageSource | LatentSource":
    """What the prior and the flow of `space` learn: images (pixel) or normalised latents (latent)."""
    from lediflow import paths

    if space == "pixel":
        return ImageSource(paths.data_dir(params), split, device)
    return LatentSource(paths.latents_dir(params), split, device)
