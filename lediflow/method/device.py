"""Where a job runs, how it names that hardware, and the image value ranges the networks see."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from lediflow.core.errors import LediflowError


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
