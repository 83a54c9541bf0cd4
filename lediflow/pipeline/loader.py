"""Training batches read ahead by DataLoader workers, bitwise the same as the in-loop reader.

At 256x256 a batch is read from a memory-mapped split; the read, the mirroring and the host-to-device copy
should overlap the step, not precede it. The batch of step k is still decided by the step's generator: the
DataLoader's sampler runs in the main process and draws step k's indices (and flips) from the generator the
trainer will hand step k, the workers only read and mirror those images, and the training loop draws the
same indices again from its own generator (so every later draw of the step is unchanged) and checks that
the prefetched batch is the one it drew. data.workers therefore changes speed, never results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lediflow.pipeline.data import load_split
from lediflow.core.errors import LediflowError
from lediflow.pipeline.sources import ImageSource, draw_batch, read_batch
from lediflow.method.device import to_model_range

Key = tuple[int, np.ndarray, "np.ndarray | None"]  # (step, sorted indices, flips)


class _StepSampler:
    """Yields each step's batch key from `first` on, drawn exactly as the training loop draws it."""

    def __init__(self, first: int, make_generator: Callable[[int], torch.Generator], count: int, size: int,
                 hflip: bool) -> None:
        self.first, self.make_generator, self.count, self.size, self.hflip = first, make_generator, count, size, hflip

    def __iter__(self) -> Iterator[Key]:
        step = self.first
        while True:
            idx, flip = draw_batch(self.make_generator(step), self.count, self.size, self.hflip)
            yield step, idx, flip
            step += 1


class _Reader(Dataset):
    """Reads the images a key names; opens the memory-mapped split lazily, once per worker process."""

    def __init__(self, folder: Path, split: str) -> None:
        self.folder, self.split, self.images = folder, split, None

    def __getitem__(self, key: Key) -> tuple[int, np.ndarray, torch.Tensor]:
        if self.images is None:
            self.images = load_split(self.folder, self.split)
        step, idx, flip = key
        return step, idx, read_batch(self.images, idx, flip)

    def __len__(self) -> int:  # the sampler decides how many; DataLoader only asks for batch_size=None maps
        raise TypeError("a step-indexed reader has no length")


class PrefetchedImages(ImageSource):
    """ImageSource whose training batches are read ahead by `workers` processes (pinned memory on CUDA)."""

    def __init__(self, data_folder: str | Path, split: str, device: torch.device, hflip: bool, workers: int,
                 prefetch: int = 4, **kwargs) -> None:
        super().__init__(data_folder, split, device, hflip, **kwargs)
        self.folder, self.split, self.workers, self.prefetch = Path(data_folder), split, workers, prefetch
        self.first: int | None = None
        self.make_generator: Callable[[int], torch.Generator] | None = None
        self.iterator: Iterator | None = None

    def start(self, step: int, make_generator: Callable[[int], torch.Generator]) -> None:
        """Called by the trainer before its loop: the first step it will run and its per-step generators."""
        self.first, self.make_generator, self.iterator = step, make_generator, None

    def _open(self, size: int) -> Iterator:
        if self.make_generator is None:
            raise LediflowError("data.workers > 0 needs the trainer to start the loader (Trainer on_start); "
                                "set data.workers: 0 for this use")
        sampler = _StepSampler(self.first, self.make_generator, len(self.images), size, self.hflip)
        loader = DataLoader(_Reader(self.folder, self.split), batch_size=None, sampler=sampler,
                            num_workers=self.workers, pin_memory=self.device.type == "cuda",
                            prefetch_factor=self.prefetch, persistent_workers=False)
        return iter(loader)

    def batch(self, generator: torch.Generator, size: int) -> torch.Tensor:
        idx, flip = draw_batch(generator, len(self.images), size, self.hflip)  # advance the step's draws as in-loop
        if self.iterator is None:
            self.iterator = self._open(size)
        step, ahead, images = next(self.iterator)
        if not np.array_equal(ahead, idx):
            raise LediflowError(f"the data loader's batch for step {step} is not the one the step drew (the trainer "
                                "called batch() more than once per step?); set data.workers: 0 and report it")
        return to_model_range(images.to(self.device, non_blocking=True))
