"""Image grids as PNG (torchvision's make_grid), written atomically."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from lediflow import artifacts


def save_grid(path: Path, rows: list[torch.Tensor], value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
    """One row per tensor (same count each), values in `value_range`, written as PNG."""
    per_row = rows[0].shape[0]
    images = torch.cat([r.detach().float().cpu() for r in rows])
    low, high = value_range
    grid = make_grid(((images - low) / (high - low)).clamp(0, 1), nrow=per_row, padding=1, pad_value=1.0)
    with artifacts.atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
