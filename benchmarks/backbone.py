"""Backbone study: each arm's training steps at equal training wall time, from one measurement.

    python benchmarks/backbone.py            # measure seconds per training step of every arm, print the table
    python benchmarks/backbone.py --write    # ... and write configs/backbone/step_times.tsv and the arm files

The study compares the Gaussian flow's DiT backbones at the default run's baseline budget in wall time, not in
steps: a patch-2 DiT sees 4x the tokens of a patch-4 one, so each step costs more and it gets fewer of them.
Every arm's step time is measured in this one process, interleaved (arm A, arm B, ..., repeated) so that load
from other processes falls on all arms alike; an arm's steps = reference steps x reference s/step / arm s/step,
rounded to 100. The reference arm of each space is the default backbone (params.yaml), at the default run's
baseline steps (flow.train.steps + flow.baseline_extra_steps). Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lediflow.pipeline.config import load_params  # noqa: E402
from lediflow.method.networks.dit import build_dit  # noqa: E402
from bare import bare_step  # noqa: E402

STUDY_DIR = ROOT / "configs" / "backbone"
TSV = STUDY_DIR / "step_times.tsv"
# name -> (space, DiT preset, patch size). The first arm of each space is its reference (the default backbone).
ARMS = {
    "bb_pixel_tiny_p4": ("pixel", "dit-tiny", 4),
    "bb_pixel_tiny_p2": ("pixel", "dit-tiny", 2),
    "bb_pixel_xs_p2": ("pixel", "dit-xs", 2),
    "bb_latent_tiny_p2": ("latent", "dit-tiny", 2),
    "bb_latent_tiny_p1": ("latent", "dit-tiny", 1),
}
HEADER = """\
# Backbone study arm, written by `python benchmarks/backbone.py --write`: edit the script, not this file.
# {space} space, Gaussian flow only, {model} at patch {patch}; {steps} optimiser steps = the default baseline's
# {ref_steps} steps x {ref_s:.4f} s/step ({ref}) / {arm_s:.4f} s/step (this arm), measured in one run
# (configs/backbone/step_times.tsv): equal training wall time.
"""


def geometry(params: dict, space: str) -> tuple[int, int]:
    """(resolution, channels) the flow of `space` sees: the image, or the trained autoencoder's latent grid."""
    if space == "pixel":
        return params["data"]["resolution"], params["data"]["channels"]
    ae = params["autoencoder"]
    return params["data"]["resolution"] // 2 ** (len(ae["block_out_channels"]) - 1), ae["latent_channels"]


def reference_steps(params: dict) -> int:
    """The default run's Gaussian flow steps: its own plus the extra steps that match the learned pipeline."""
    return params["flow"]["train"]["steps"] + params["flow"]["baseline_extra_steps"]


def equal_time_steps(ref_steps: int, ref_seconds: float, arm_seconds: float) -> int:
    """Steps that take the reference's wall time at the arm's step time, rounded to 100 (at least 100)."""
    return max(100, int(round(ref_steps * ref_seconds / arm_seconds / 100.0)) * 100)


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, shape: tuple, gen: torch.Generator) -> None:
    bare_step(model, opt, torch.rand(shape, generator=gen) * 2 - 1, gen)


def measure(params: dict, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of every arm, the arms interleaved within each repeat."""
    batch = params["flow"]["train"]["batch_size"]
    nets = {}
    for name, (space, model, patch) in ARMS.items():
        res, ch = geometry(params, space)
        torch.manual_seed(0)
        net = build_dit(model, res, ch, patch)
        opt = torch.optim.AdamW(net.parameters(), lr=3e-4)
        nets[name] = (net, opt, (batch, ch, res, res), torch.Generator().manual_seed(0))
        for _ in range(2):  # warm-up: allocator and kernels
            _step(*nets[name])
    times: dict[str, list[float]] = {name: [] for name in ARMS}
    for _ in range(repeats):
        for name, args in nets.items():
            start = time.perf_counter()
            for _ in range(steps):
                _step(*args)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def plan(params: dict, seconds: dict[str, float]) -> dict[str, int]:
    """Each arm's steps at the wall time of its space's reference arm."""
    refs = {}
    for name, (space, _, _) in ARMS.items():
        refs.setdefault(space, name)
    return {name: equal_time_steps(reference_steps(params), seconds[refs[space]], seconds[name])
            for name, (space, _, _) in ARMS.items()}


def read_tsv(path: Path = TSV) -> dict[str, float]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {row[0]: float(row[4]) for row in rows}


def write(params: dict, seconds: dict[str, float], steps: dict[str, int], note: str) -> None:
    refs: dict[str, str] = {}
    lines = ["arm\tspace\tmodel\tpatch_size\tseconds_per_step\tsteps\tnote"]
    for name, (space, model, patch) in ARMS.items():
        refs.setdefault(space, name)
        lines.append(f"{name}\t{space}\t{model}\t{patch}\t{seconds[name]:.6f}\t{steps[name]}\t{note}")
        ref = refs[space]
        key = "patch_size" if space == "pixel" else "latent_patch_size"
        body = (f"run: {{name: ablation-{name}}}\nflow:\n  spaces: [{space}]\n  model: {model}\n  {key}: {patch}\n"
                f"  train: {{steps: {steps[name]}}}\n")
        text = HEADER.format(space=space, model=model, patch=patch, steps=steps[name],
                             ref_steps=reference_steps(params), ref_s=seconds[ref], ref=ref, arm_s=seconds[name])
        (STUDY_DIR / f"{name}.yaml").write_text(text + body)
    TSV.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per arm per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write step_times.tsv and the arm files")
    args = parser.parse_args()
    params = load_params([str(ROOT / "params.yaml")])
    seconds = measure(params, args.steps, args.repeats)
    steps = plan(params, seconds)
    note = f"cpu {torch.get_num_threads()} threads, torch {torch.__version__}, {args.repeats}x{args.steps} steps"
    print(f"device: cpu, {torch.get_num_threads()} threads; reference steps {reference_steps(params)}\n")
    print("| arm | space | model | patch | s/step | steps at equal wall time |\n| --- | --- | --- | --- | --- | --- |")
    for name, (space, model, patch) in ARMS.items():
        print(f"| {name} | {space} | {model} | {patch} | {seconds[name]:.4f} | {steps[name]} |")
    if args.write:
        write(params, seconds, steps, note)
        print(f"\nwrote {TSV.relative_to(ROOT)} and {len(ARMS)} arm files")


if __name__ == "__main__":
    main()
