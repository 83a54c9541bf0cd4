"""Fashion-MNIST (Xiao et al. 2017, MIT licence): gzipped IDX files.

Resolution order: data.path -> the Debian package dataset-fashion-mnist ->
the download cache -> the official mirror. Checksums are taken over the
*decompressed* IDX payload, because the Debian package recompressed the
archives (its .gz files differ byte-wise from the mirror's, their contents
do not).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from lediflow.pipeline.data.download import download
from lediflow.core.errors import LediflowError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# sha256 of the decompressed IDX payloads.
FILES = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def parse_idx(payload: bytes) -> np.ndarray:
    """IDX format: 2 zero bytes, dtype code, ndim, big-endian uint32 dims, data."""
    if len(payload) < 4 or payload[0] != 0 or payload[1] != 0 or payload[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = payload[3]
    dims = np.frombuffer(payload, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX header says {tuple(dims)} but holds {data.size} bytes")
    return data.reshape(tuple(dims))


def _read_verified(path: Path, expected: str | None) -> np.ndarray:
    try:
        payload = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise LediflowError(f"{path} is not a readable gzip file ({exc}); delete it or point data.path elsewhere") from None
    digest = hashlib.sha256(payload).hexdigest()
    if expected is not None and digest != expected:
        raise LediflowError(
            f"{path} does not hold the official Fashion-MNIST data (sha256 {digest[:12]}..., expected {expected[:12]}...); "
            "replace the file or point data.path at the official IDX files"
        )
    return parse_idx(payload)


def locate(path: str | None, cache_dir: Path, url: str | None) -> tuple[Path, str]:
    """Return the folder holding the four .gz files and how it was found."""
    names = list(FILES)
    if path is not None:
        folder = Path(path)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise LediflowError(f"data.path {folder} lacks {missing[0]}; point it at a folder with the four Fashion-MNIST .gz files")
        return folder, "path"
    for folder, how in ((DEBIAN_DIR, "debian-package"), (cache_dir, "cache")):
        if all((folder / n).is_file() for n in names):
            return folder, how
    base = url or MIRROR
    try:
        for name in names:
            download(base.rstrip("/") + "/" + name, cache_dir / name)
    except LediflowError as exc:
        raise LediflowError(
            "Fashion-MNIST not found offline and the download failed; install it with "
            "`apt-get install dataset-fashion-mnist` or set data.path to a folder of the IDX .gz files "
            f"({exc})"
        ) from None
    return cache_dir, "download"


def load(folder: Path, split: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, R, R) uint8 zero-padded around the 28x28 original, labels (N,) int64."""
    image_file, label_file = SPLITS[split]
    images = _read_verified(folder / image_file, FILES[image_file])
    labels = _read_verified(folder / label_file, FILES[label_file]).astype(np.int64)
    if resolution < 28:
        raise LediflowError(f"data.resolution {resolution} is below Fashion-MNIST's 28; use 28 or more")
    pad = resolution - 28
    before, after = pad // 2, pad - pad // 2
    padded = np.pad(images, ((0, 0), (before, after), (before, after)))
    return padded[:, None, :, :], labels
