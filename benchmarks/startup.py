"""Per-job start-up: what importing a stage costs a fresh process, over the unavoidable `import torch`.

The pipeline runs one process per sampling and scoring cell (88 in the default run), so seconds of imports are
paid 88 times; on a GPU, where a cell's work is under a second, they are most of a job. Each module is imported
in a fresh interpreter, interleaved with the others, median of the repeats.

- startup_ratio[sample] = import of the sample stage / import torch; target <= 1.5 (a pixel cell imports no
  diffusers and no torchvision: the latent decoder is imported where a latent cell decodes).
- startup_ratio[sample + decoder]: what a latent cell pays, and what every cell paid before the import moved.
- startup_ratio[score]: the scorer imports torch-fidelity's Inception (and with it torchvision); reported.

    python benchmarks/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = {
    "torch": "import torch",
    "sample": "import lediflow.pipeline.stages.sample",
    "sample + decoder": "import lediflow.pipeline.stages.sample, lediflow.method.autoencoder",
    "score": "import lediflow.pipeline.stages.score",
}
TIMER = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"


def import_seconds(code: str) -> float:
    done = subprocess.run([sys.executable, "-c", TIMER.format(code=code)], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def run(repeats: int = 5) -> list[tuple[str, str, str, str]]:
    seconds: dict[str, list[float]] = {name: [] for name in MODULES}
    import_seconds(MODULES["torch"])  # warm the page cache, untimed
    for _ in range(repeats):
        for name, code in MODULES.items():
            seconds[name].append(import_seconds(code))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    rows = []
    for name in ("sample", "sample + decoder", "score"):
        ratio = median[name] / median["torch"]
        rows.append((f"startup_ratio[{name}]", f"{ratio:.2f}", "<= 1.5" if name == "sample" else "none set",
                     f"{median[name]:.2f} s vs import torch {median['torch']:.2f} s, median of {repeats}"))
    return rows


if __name__ == "__main__":
    print("| benchmark | value | target | detail |\n| --- | --- | --- | --- |")
    for row in run():
        print("| " + " | ".join(row) + " |")
