"""Training batches of a run's data: images of a split (pixel) or posterior samples of its latents (latent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lediflow.core import artifacts
from lediflow.pipeline.data import load_split
from lediflow.method.device import to_model_range

_IN_MEMORY_BYTES = 2 << 30  # splits below 2 GiB are read into RAM; larger ones stay memory-mapped


def draw_batch(generator: torch.Generator, count: int, size: int, hflip: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The images of one training batch: sorted indices (memory-mapped reads go in file order) and, with
    data.hflip, which of them to mirror. The only random draws a batch takes from the step's generator."""
    idx = torch.randint(count, (size,), generator=generator, device=generator.device).cpu().numpy()
    flip = (torch.rand(size, generator=generator, device=generator.device) < 0.5).cpu().numpy() if hflip else None
    order = np.argsort(idx, kind="stable")
    return idx[order], None if flip is None else flip[order]


def read_batch(images: np.ndarray, idx: np.ndarray, flip: np.ndarray | None) -> torch.Tensor:
    """uint8 images[idx], the flagged ones mirrored left-right."""
    batch = torch.from_numpy(np.ascontiguousarray(images[idx]))
    if flip is not None and flip.any():
        mask = torch.from_numpy(flip)
        batch[mask] = batch[mask].flip(-1)
    return batch


class ImageSource:
    """Random batches of one split, drawn with an explicit generator."""

    def __init__(self, data_folder: str | Path, split: str, device: torch.device, hflip: bool = False,
                 in_memory_bytes: int = _IN_MEMORY_BYTES) -> None:
        array = load_split(data_folder, split)
        self.images = np.array(array) if array.nbytes < in_memory_bytes else array
        self.device, self.hflip = device, hflip
        self.shape = tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, generator: torch.Generator, size: int) -> torch.Tensor:
        idx, flip = draw_batch(generator, len(self.images), size, self.hflip)
        return to_model_range(read_batch(self.images, idx, flip).to(self.device))

    def slice(self, start: int, stop: int) -> torch.Tensor:
        return to_model_range(torch.from_numpy(np.array(self.images[start:stop])).to(self.device))

    def sample_slice(self, start: int, stop: int, generator: torch.Generator) -> torch.Tensor:
        """Images are deterministic: the same as slice (the interface LatentSource shares)."""
        return self.slice(start, stop)


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

    def sample_slice(self, start: int, stop: int, generator: torch.Generator) -> torch.Tensor:
        """One posterior sample per image of a range: the kind of latent the prior and the flow train on."""
        eps = torch.randn(self.mean[start:stop].shape, generator=generator, device=generator.device).to(self.device)
        return self.mean[start:stop] + self.std[start:stop] * eps
