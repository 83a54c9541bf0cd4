"""Any folder tree of PNG/JPEG/WebP images, resized and center-cropped."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from lediflow.core.errors import LediflowError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp"}


class BadImageError(LediflowError):
    """A file with an image extension that cannot be decoded."""


def list_images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise LediflowError(f"image folder {root} does not exist; set data.path to a folder of PNG/JPEG/WebP files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise LediflowError(f"image folder {root} holds no .png/.jpg/.jpeg/.webp files; check data.path")
    return files


def resize_center_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Scale the short side to `resolution` (Lanczos), then crop the centre square."""
    width, height = image.size
    scale = resolution / min(width, height)
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(new_size, Image.Resampling.LANCZOS)
    left = (new_size[0] - resolution) // 2
    top = (new_size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def load_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """One image as (C, R, R) uint8; raises BadImageError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = image.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(
            f"{path} is not a readable image ({type(exc).__name__}); remove it or set data.on_bad_image: skip"
        ) from None
    array = np.asarray(resize_center_crop(image, resolution), dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def write_images(
    files: list[Path], out: Path, resolution: int, channels: int, on_bad_image: str, chunk: int = 4096
) -> list[str]:
    """Decode `files` into a memory-mapped (N, C, R, R) uint8 .npy at `out`.

    Streams through a memmap so paper-scale datasets never sit in RAM whole;
    returns the skipped paths (on_bad_image: skip), whose slots are compacted away.
    """
    shape = (len(files), channels, resolution, resolution)
    array = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=shape)
    skipped: list[str] = []
    kept = 0
    for path in tqdm(files, desc=out.stem, unit="img", disable=len(files) < 1000):
        try:
            array[kept] = load_image(path, resolution, channels)
            kept += 1
        except BadImageError:
            if on_bad_image == "error":
                raise
            skipped.append(str(path))
    array.flush()
    if kept == 0:
        raise LediflowError(f"none of the {len(files)} files for {out.stem} is a readable image; check data.path")
    if kept < len(files):
        compact = out.with_name(out.stem + ".compact.npy")
        small = np.lib.format.open_memmap(compact, mode="w+", dtype=np.uint8, shape=(kept, *shape[1:]))
        for begin in range(0, kept, chunk):
            small[begin : begin + chunk] = array[begin : min(kept, begin + chunk)]
        small.flush()
        del small, array
        compact.replace(out)
    return skipped


def split_indices(count: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle, then the first share is the test split (at least one each)."""
    order = np.random.default_rng(seed).permutation(count)
    n_test = min(max(1, round(count * test_fraction)), count - 1) if count > 1 else 0
    return order[n_test:], order[:n_test]
