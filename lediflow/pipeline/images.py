"""Image grids as PNG (torchvision's make_grid), written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from lediflow.core import artifacts


def save_grid(path: Path, images: torch.Tensor, nrow: int | None = None,
              value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
    """Images (N, C, H, W) in `value_range`, `nrow` per row (default: a square), as one PNG."""
    nrow = nrow or math.ceil(math.sqrt(images.shape[0]))
    low, high = value_range
    scaled = ((images.detach().float().cpu() - low) / (high - low)).clamp(0, 1)
    grid = make_grid(scaled, nrow=nrow, padding=1, pad_value=1.0)
    with artifacts.atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
