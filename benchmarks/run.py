"""lediflow benchmarks: ratios measured in one run (this machine is noisy; absolute times are not targets).

    python benchmarks/run.py                  # prints a Markdown table (~8 min on 2 cores)
    python benchmarks/run.py --quick          # fewer repetitions
    python benchmarks/run.py --no-pipeline    # only the training and sampling ratios (~2 min)

- train_ratio = images/s of lediflow's Trainer / images/s of a bare PyTorch loop (same DiT, batch, AdamW,
  clipping), both clocks started after the same WARMUP steps; target >= 0.95. The Trainer adds EMA, per-step
  generators, NaN guards, logging.
- sample_overhead[solver] = wall time of lediflow's sampling path (per-image seeds, torchdiffeq, NFE
  counting) / (NFE x time of one bare network call on the same batch); target <= 1.10.
- scorer_ratio (benchmarks/scorer.py): Inception img/s in channels_last, as the score stage runs
  it, over the default memory layout; same features to float noise (tests/test_metrics.py).
- fid_ratio[n] (benchmarks/scorer.py): seconds of torch-fidelity's point FID (nonsymmetric eigvals of the
  2048 x 2048 product) over lediflow.analysis.metrics.fid's symmetric form, at the default and smoke sample counts;
  same value to 1e-6 (tests/test_metrics.py).
- loader_ratio (benchmarks/loader.py): s/step of a 256x256 DiT step on a cached batch over s/step
  reading a memory-mapped split, in the loop and with 2 DataLoader workers; target >= 0.90 (no waiting on data).
- startup_ratio[stage] (benchmarks/startup.py): a fresh process's import of the sample (or score) stage over
  `import torch`; target <= 1.5 for the sample stage (one process per cell: a pixel cell imports no diffusers).
- warm_ratio[stage] (benchmarks/warm.py): a smoke cell's job seconds forked from the warm server over a cold
  process's, on a copy of results/smoke (skipped without a finished smoke run); reported.
- GPU section (benchmarks/gpu.py), only where CUDA is present: train img/s of the presets' DiT at
  256 px and on 32x32x4 latents, sampling ms/image at euler-8, Inception img/s, the Trainer/bare-loop ratio.
- pipeline (benchmarks/pipeline.py): `snakemake -n` time on the default config, the smoke run's
  end-to-end wall time and each stage's peak RSS (Snakemake `benchmark:` files), a no-op `dvc repro`.
  Absolute times, reported for planning; no issue set a target for them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lediflow.method.flow_matching import flow_matching_loss, gaussian_coupling, sample_time  # noqa: E402
from lediflow.method.networks.dit import build_dit  # noqa: E402
from lediflow.method.sampling import sample_batch  # noqa: E402
from lediflow.method.trainer import TrainConfig, Trainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare import bare_step, steady_images_per_s  # noqa: E402

MODEL, RES, BATCH = "dit-tiny", 32, 64
WARMUP = 10  # steps off both clocks; also the Trainer's log_every, so its metrics windows start right after them


def _data() -> torch.Tensor:
    return torch.rand(1024, 1, RES, RES) * 2 - 1


def bare_loop_images_per_s(steps: int) -> float:
    torch.manual_seed(0)
    model = build_dit(MODEL, RES, 1, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    data, gen = _data(), torch.Generator().manual_seed(0)
    start = None
    for k in range(WARMUP + steps):
        if k == WARMUP:
            start = time.perf_counter()
        bare_step(model, opt, data[torch.randint(len(data), (BATCH,), generator=gen)], gen)
    return steps * BATCH / (time.perf_counter() - start)


def trainer_images_per_s(steps: int) -> float:
    torch.manual_seed(0)
    model = build_dit(MODEL, RES, 1, 4)
    data = _data()

    def loss_fn(net, gen):
        x1 = data[torch.randint(len(data), (BATCH,), generator=gen)]
        return flow_matching_loss(net, gaussian_coupling(x1, gen), x1, sample_time(BATCH, gen, x1.device)).total, {}

    with tempfile.TemporaryDirectory() as tmp:
        # metrics as in a real run, a line every WARMUP steps (steps is a multiple of it); the final checkpoint,
        # once per run, falls outside the windows
        cfg = TrainConfig(steps=WARMUP + steps, batch_size=BATCH, lr=3e-4, checkpoint_every=10**9,
                          log_every=WARMUP)
        trainer = Trainer(model, loss_fn, tmp, cfg, seed=0, device=torch.device("cpu"), fingerprint={},
                          progress=False)
        trainer.fit()
        return steady_images_per_s(trainer.metrics_path, WARMUP)


@torch.no_grad()
def bare_call_seconds(model: torch.nn.Module, batch: int, repeats: int) -> float:
    x, t = torch.randn(batch, 1, RES, RES), torch.rand(batch)
    model(x, t)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x, t)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sample_overhead(solver: str, steps: int, batch: int, repeats: int) -> tuple[float, int]:
    torch.manual_seed(0)
    model = build_dit(MODEL, RES, 1, 4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    device = torch.device("cpu")
    sample_batch(model, None, range(batch), 0, (1, RES, RES), solver, steps, None, device)  # warm-up
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = sample_batch(model, None, range(batch), 0, (1, RES, RES), solver, steps, None, device)
        walls.append(time.perf_counter() - start)
    per_call = bare_call_seconds(model, batch, repeats * out.nfe)
    return statistics.median(walls) / (out.nfe * per_call), out.nfe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the smoke-run and DVC measurements")
    args = parser.parse_args()
    steps, repeats = (10, 2) if args.quick else (30, 3)
    torch.set_num_threads(torch.get_num_threads())
    # Rows are printed as they are measured, so a run stopped at a time limit keeps what it had.
    print(f"device: cpu, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| benchmark | value | target | detail |\n| --- | --- | --- | --- |", flush=True)

    def emit(rows: Iterable[tuple[str, str, str, str]]) -> None:
        for row in rows:
            print("| " + " | ".join(row) + " |", flush=True)

    if torch.cuda.is_available():  # the GPU section first: on a borrowed GPU it is what the time is for
        from gpu import run as gpu_rows

        emit(gpu_rows())
    bare = statistics.median(bare_loop_images_per_s(steps) for _ in range(repeats))
    ours = statistics.median(trainer_images_per_s(steps) for _ in range(repeats))
    emit([("train_ratio (Trainer / bare loop)", f"{ours / bare:.3f}", ">= 0.95",
           f"{ours:.0f} vs {bare:.0f} img/s, {MODEL} batch {BATCH}")])
    for solver in ("euler", "midpoint", "rk4"):
        ratio, nfe = sample_overhead(solver, 8, 250, repeats)
        emit([(f"sample_overhead[{solver}-8]", f"{ratio:.3f}", "<= 1.10", f"NFE {nfe}, batch 250")])
    from loader import run as loader_rows
    from scorer import run as scorer_rows
    from startup import run as startup_rows

    emit(startup_rows(repeats=repeats))
    smoke = Path(__file__).resolve().parents[1] / "results" / "smoke"
    if (smoke / "tables" / "headline.md").is_file():  # the warm server's rows need a finished smoke run
        from warm import run as warm_rows

        emit(warm_rows(smoke, repeats=1 if args.quick else 2))
    else:
        emit([("warm_ratio", "skipped", "none set", "no finished smoke run at results/smoke "
               "(snakemake --cores all --configfile configs/smoke.yaml)")])

    emit(scorer_rows(repeats=repeats))
    emit(loader_rows(repeats=repeats))
    if not args.no_pipeline:
        from pipeline import run as pipeline_rows

        emit(pipeline_rows())

if __name__ == "__main__":
    main()
