"""Data loading at 256x256: does the training loop wait on data?

The same trainer step (a DiT at patch 16 on 256x256x3, the presets' pixel geometry, at a CPU-sized width and
batch) is timed three ways on a memory-mapped split of random images, interleaved, median of the repeats:
a cached batch (no data reading at all: the ceiling), the in-loop reader (data.workers 0) and DataLoader
workers (data.workers 2, as the presets do with more). loader_ratio = s/step with the cached batch / s/step
with real data; 1.0 means the loop never waits.

    python benchmarks/loader.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lediflow.method import seeding  # noqa: E402
from lediflow.method.flow_matching import flow_matching_loss, gaussian_coupling, sample_time  # noqa: E402
from lediflow.core import artifacts  # noqa: E402
from lediflow.pipeline.loader import PrefetchedImages  # noqa: E402
from lediflow.method.networks.dit import build_dit  # noqa: E402
from lediflow.pipeline.sources import ImageSource  # noqa: E402

RES, BATCH, COUNT = 256, 16, 512  # 512 x 196 KiB = 96 MiB memory-mapped, never read into RAM
CPU = torch.device("cpu")


def _step_seconds(source, steps: int, first: int) -> float:
    """Seconds per step of `steps` flow-matching steps drawing from `source` (None: one cached batch)."""
    torch.manual_seed(0)
    model = build_dit("dit-xs", RES, 3, 16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    make = lambda k: seeding.generator(CPU, 0, seeding.STREAM_TRAIN, k, 0)  # noqa: E731
    if hasattr(source, "start"):
        source.start(first, make)
    cached = torch.rand(BATCH, 3, RES, RES) * 2 - 1
    started = None
    for k in range(first, first + steps + 1):
        if k == first + 1:
            started = time.perf_counter()  # the first step (worker start-up, allocator) is not timed
        gen = make(k)
        x1 = cached if source is None else source.batch(gen, BATCH)
        loss = flow_matching_loss(model, gaussian_coupling(x1, gen), x1, sample_time(BATCH, gen, CPU)).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - started) / steps


def run(repeats: int = 3, steps: int = 8) -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        images = np.lib.format.open_memmap(Path(tmp) / "train.npy", "w+", np.uint8, (COUNT, 3, RES, RES))
        images[:] = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
        images.flush()
        del images
        artifacts.write_manifest(tmp, "prepare-data", {})  # the splits a run reads are always recorded
        kinds = {"cached": lambda: None,
                 "in-loop": lambda: ImageSource(tmp, "train", CPU, True, in_memory_bytes=0),
                 "workers": lambda: PrefetchedImages(tmp, "train", CPU, True, workers=2, in_memory_bytes=0)}
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(repeats):
            for kind, make in kinds.items():
                times[kind].append(_step_seconds(make(), steps, first=r * steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    detail = (f"dit-xs/16 at {RES}x{RES}x3, batch {BATCH}, memory-mapped split, hflip; s/step cached "
              f"{med['cached']:.3f}, in-loop {med['in-loop']:.3f}, workers {med['workers']:.3f}")
    return [("loader_ratio[in-loop] (cached batch / real data, cpu)", f"{med['cached'] / med['in-loop']:.3f}",
             ">= 0.90", detail),
            ("loader_ratio[2 workers] (cached batch / real data, cpu)", f"{med['cached'] / med['workers']:.3f}",
             ">= 0.90", "same; the workers share this machine's cores with the step")]


if __name__ == "__main__":
    print("| benchmark | value | target | detail |\n| --- | --- | --- | --- |")
    for row in run():
        print("| " + " | ".join(row) + " |")
