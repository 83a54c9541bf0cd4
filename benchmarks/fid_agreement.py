"""Point FID of torch-fidelity (nonsymmetric eigvals) against lediflow.analysis.metrics.fid, on cached real features.

    python benchmarks/fid_agreement.py [--features ~/.cache/lediflow/features]

Every cached Inception feature file of a scored cell (1000 samples: default-size runs; 32: smoke runs) is scored
against the cached reference features of its size (2000 or 100 images); prints each pair of values, the largest
relative difference and both total times. Needs a machine that has scored runs (the cache is not in git).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lediflow.analysis.metrics.fid import fid_from_features  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scorer import fid_torch_fidelity  # noqa: E402

CELL_TO_REFERENCE = {1000: 2000, 32: 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=Path.home() / ".cache" / "lediflow" / "features")
    args = parser.parse_args()
    files = sorted(args.features.glob("*.npy"))
    sizes = {f: np.load(f, mmap_mode="r").shape[0] for f in files}
    references = {n: torch.from_numpy(np.load(f)) for f, n in sizes.items() if n in CELL_TO_REFERENCE.values()}
    worst, seconds, count = 0.0, [0.0, 0.0], 0
    for f, n in sizes.items():
        if n not in CELL_TO_REFERENCE or CELL_TO_REFERENCE[n] not in references:
            continue
        x, ref = torch.from_numpy(np.load(f)), references[CELL_TO_REFERENCE[n]]
        values = []
        for k, fid in enumerate((fid_torch_fidelity, fid_from_features)):
            started = time.perf_counter()
            values.append(fid(x, ref))
            seconds[k] += time.perf_counter() - started
        worst, count = max(worst, abs(values[1] - values[0]) / abs(values[0])), count + 1
        print(f"{n:5d} {values[0]:12.6f} {values[1]:12.6f}", flush=True)
    if not count:
        sys.exit(f"fid_agreement: no cached cell features under {args.features}; score a run first")
    print(f"{count} cells, max relative difference {worst:.2e}, "
          f"seconds torch-fidelity {seconds[0]:.1f} vs lediflow {seconds[1]:.1f}")


if __name__ == "__main__":
    main()
