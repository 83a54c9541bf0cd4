"""Sample grids: torchvision's make_grid + save_image layout byte for byte, without importing torchvision."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lediflow.pipeline.images import save_grid


@pytest.mark.parametrize("shape, nrow", [((16, 1, 8, 8), None), ((5, 3, 6, 4), 2), ((1, 1, 8, 8), None),
                                         ((7, 3, 5, 5), 10)])
def test_a_grid_is_torchvisions_png_byte_for_byte(tmp_path: Path, shape: tuple[int, ...], nrow: int | None):
    from torchvision.utils import make_grid, save_image

    images = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2  # values past the range too
    ours = tmp_path / "ours.png"
    save_grid(ours, images, nrow=nrow)
    scaled = ((images + 1) / 2).clamp(0, 1)
    theirs = tmp_path / "theirs.png"
    save_image(make_grid(scaled, nrow=nrow or int(shape[0] ** 0.5 + 0.999), padding=1, pad_value=1.0), theirs,
               format="png")
    assert ours.read_bytes() == theirs.read_bytes()


def test_writing_a_grid_imports_no_torchvision():
    code = "import sys, lediflow.pipeline.images; print('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
