"""Scorer throughput: Inception img/s in channels_last (what the score stage uses) over the default layout,
and the point FID's time through torch-fidelity's nonsymmetric eigvals over lediflow.analysis.metrics.fid's eigvalsh.

Both layouts run the same torch-fidelity extractor with the same weights on the same 200 Fashion-MNIST
training images (random images when the dataset package is absent), interleaved, median of the repeats.
The FID timings use random 2048-d features at the default run's counts (1000 samples, 2000 references) and
the smoke run's (32, 100); each time includes both sides' statistics, as a score job pays them.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from lediflow.analysis.metrics.fid import fid_from_features
from lediflow.analysis.metrics.inception import InceptionFeatures, resolve_weights

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


def _fid_seconds(fid: Callable[[torch.Tensor, torch.Tensor], float], a: torch.Tensor, b: torch.Tensor) -> float:
    started = time.perf_counter()
    fid(a, b)
    return time.perf_counter() - started


def fid_torch_fidelity(a: torch.Tensor, b: torch.Tensor) -> float:
    stats = [fid_features_to_statistics(x.double()) for x in (a, b)]
    return fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]


def fid_rows(repeats: int = 2) -> list[tuple[str, str, str, str]]:
    rows = []
    for n, m in ((1000, 2000), (32, 100)):
        gen = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, 2048, generator=gen).double(), torch.randn(m, 2048, generator=gen).double() + 0.1
        theirs, ours = [], []
        for _ in range(repeats):
            theirs.append(_fid_seconds(fid_torch_fidelity, a, b))
            ours.append(_fid_seconds(fid_from_features, a, b))
        ratio = statistics.median(theirs) / statistics.median(ours)
        rows.append((f"fid_ratio[n={n}] (torch-fidelity eigvals / eigvalsh form)", f"{ratio:.1f}", "> 1",
                     f"{statistics.median(theirs):.2f} vs {statistics.median(ours):.2f} s, 2048-d, {m} references"))
    return rows


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
    return [("scorer_ratio (channels_last / default layout)", f"{ratio:.2f}", "> 1",
             f"{statistics.median(ours):.1f} vs {statistics.median(default):.1f} img/s, {COUNT} {source} images"),
            *fid_rows(repeats)]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
