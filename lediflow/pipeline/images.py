"""Image grids as PNG, written atomically.

The grid is torchvision's `make_grid` + `save_image` layout, byte for byte
(tests/test_images.py compares the files), written here because importing
torchvision.utils imports torchvision's whole package, model zoo included:
about 2 s on every sampling, latent and report job for one grid.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from lediflow.core import artifacts


def make_grid(images: torch.Tensor, nrow: int, padding: int, pad_value: float) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> one (3, H', W') image: `nrow` per row, `padding` pixels of `pad_value` between
    and around them, one-channel images repeated to three (torchvision.utils.make_grid's layout)."""
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[0] == 1:  # a single image is written as it is, without a frame
        return images[0]
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    cell_h, cell_w = height + padding, width + padding
    grid = images.new_full((channels, cell_h * rows + padding, cell_w * columns + padding), pad_value)
    for k in range(count):
        top, left = (k // columns) * cell_h + padding, (k % columns) * cell_w + padding
        grid[:, top:top + height, left:left + width] = images[k]
    return grid


def to_uint8(grid: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> 0..255 rounded half up, as (H, W, C) (torchvision.utils.save_image's conversion)."""
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8)


def save_grid(path: Path, images: torch.Tensor, nrow: int | None = None,
              value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
    """Images (N, C, H, W) in `value_range`, `nrow` per row (default: a square), as one PNG."""
    nrow = nrow or math.ceil(math.sqrt(images.shape[0]))
    low, high = value_range
    scaled = ((images.detach().float().cpu() - low) / (high - low)).clamp(0, 1)
    grid = make_grid(scaled, nrow=nrow, padding=1, pad_value=1.0)
    with artifacts.atomic_path(path) as tmp:
        Image.fromarray(to_uint8(grid).numpy()).save(tmp, format="png")
