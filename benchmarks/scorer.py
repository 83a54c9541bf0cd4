"""Scorer throughput: Inception img/s in channels_last (what the score stage uses) over the default layout.

Both layouts run the same torch-fidelity extractor with the same weights on the same 200 Fashion-MNIST
training images (random images when the dataset package is absent), interleaved, median of the repeats.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lediflow.metrics.inception import InceptionFeatures, resolve_weights

COUNT, BATCH = 200, 50
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def _images() -> tuple[np.ndarray, str]:
    if FASHION.is_file():
        import gzip

        raw = np.frombuffer(gzip.open(FASHION).read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
        return np.pad(raw[:COUNT], ((0, 0), (0, 0), (2, 2), (2, 2))), "Fashion-MNIST"
    return np.random.default_rng(0).integers(0, 256, (COUNT, 1, 32, 32), dtype=np.uint8), "random"


def _images_per_s(net: InceptionFeatures, images: np.ndarray) -> float:
    started = time.perf_counter()
    net(images, BATCH)
    return len(images) / (time.perf_counter() - started)


def run(repeats: int = 2, cache: Path = Path.home() / ".cache" / "lediflow") -> list[tuple[str, str, str, str]]:
    images, source = _images()
    fast = InceptionFeatures(resolve_weights(None, cache), torch.device("cpu"))
    plain = InceptionFeatures(resolve_weights(None, cache), torch.device("cpu"))
    plain.net = plain.net.to(memory_format=torch.contiguous_format)
    fast(images[:BATCH], BATCH), plain(images[:BATCH], BATCH)  # warm-up
    ours, default = [], []
    for _ in range(repeats):
        ours.append(_images_per_s(fast, images))
        default.append(_images_per_s(plain, images))
    ratio = statistics.median(ours) / statistics.median(default)
    return [("scorer_ratio (channels_last / default layout)", f"{ratio:.2f}", "> 1 (issue 13)",
             f"{statistics.median(ours):.1f} vs {statistics.median(default):.1f} img/s, {COUNT} {source} images")]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
