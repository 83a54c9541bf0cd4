"""Run-time helpers shared by the stages: device choice and image batches."""

from __future__ import annotations

import platform
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


def device_name(device: torch.device) -> str:
    """The hardware a job ran on, for its records: the card's name on a GPU, the processor's model and torch's
    thread count on a CPU. Training seconds compare only between records that name the same hardware (two
    machines of one cloud can differ 2-4x in speed)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


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


def training_data(params: dict, space: str, split: str, device: torch.device) -> "ImageSource | LatentSource":
    """What the autoencoder, the prior and the flow of `space` learn: images (pixel; read ahead by data.workers
    DataLoader processes when set, mirrored at random with data.hflip) or normalised latents (latent)."""
    from lediflow import paths

    if space == "pixel":
        data = params["data"]
        if data["workers"] > 0:
            from lediflow.loader import PrefetchedImages

            return PrefetchedImages(paths.data_dir(params), split, device, data["hflip"], data["workers"])
        return ImageSource(paths.data_dir(params), split, device, data["hflip"])
    return LatentSource(paths.latents_dir(params), split, device)
