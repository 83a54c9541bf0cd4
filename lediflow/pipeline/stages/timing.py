"""time-cells: the wall-clock cost per image of every cell of one space, repeated and interleaved.

The sample stage times each cell once, while it generates; on a shared CPU
the same network's cost per NFE then varies by up to 25% between cells timed
at different moments. Here every (setting, arm) pair is timed on the same
batch of `sample.timing_images` images `sample.timing_repeats` times after an
untimed warm-up, the two arms of a setting back to back (their order
alternating between repeats), and the file keeps every repeat; the tables use
the median. Costs include the latent sampler and prior decoder (learned arm)
and the autoencoder decode (latent space), as in the sample stage.
"""

from __future__ import annotations

import statistics

import torch

from lediflow.core import artifacts

from lediflow.pipeline import paths
from lediflow.method.checkpoint import load_model
from lediflow.pipeline.config import Params
from lediflow.method.numerics import configure
from lediflow.method.device import resolve_device
from lediflow.method.sampling import sample_batch
from lediflow.pipeline.stages.common import file_hash
from lediflow.pipeline.stages.sample import decode_timed, device_name, load_decoder, load_source


def _time_once(arm: dict, setting: str, indices: list[int], params: Params, device: torch.device) -> dict:
    solver, steps, tol = paths.parse_setting(setting)
    velocity = arm["numerics"].velocity(arm["flow"], adaptive=solver in paths.ADAPTIVE_SOLVERS)
    out = sample_batch(velocity, arm["prior"], indices, params["run"]["seed"], arm["shape"], solver, steps, tol,
                       device)
    _, out.seconds["decode"] = decode_timed(arm["codec"], out.images, device)
    per_image = {k: 1000 * v / len(indices) for k, v in out.seconds.items()}
    return {**{f"ms_{k}": v for k, v in per_image.items()}, "ms_total": sum(per_image.values()), "nfe": out.nfe}


def time_cells(params: Params, space: str) -> dict:
    device = resolve_device(params["run"]["device"])
    cfg = params["sample"]
    codec = load_decoder(params, space, device)
    arms = {}
    for prior in params["flow"]["priors"]:
        model = paths.flow_name(space, prior)
        flow_model = load_model(paths.model_dir(params, model), device)
        arch = flow_model.arch
        arms[model] = {"flow": flow_model, "prior": load_source(params, space, prior, device), "codec": codec,
                       "numerics": configure(params, device),
                       "shape": (arch["channels"], arch["resolution"], arch["resolution"]),
                       "settings": paths.solver_settings(params, model),
                       "sha256": file_hash(paths.model_dir(params, model) / "model.safetensors")}
    indices = list(range(cfg["timing_images"]))
    every = list(dict.fromkeys(s for arm in arms.values() for s in arm["settings"]))
    cells: dict[str, dict[str, dict]] = {model: {} for model in arms}
    for model, arm in arms.items():
        # Untimed warm-up at the timed batch size: the first call at a new shape pays for kernel and
        # allocator setup (seen: 10x on the autoencoder's decoder), which no repeat should carry.
        _time_once(arm, arm["settings"][0], indices, params, device)
    for setting in every:
        present = [model for model, arm in arms.items() if setting in arm["settings"]]
        repeats: dict[str, list[dict]] = {model: [] for model in present}
        for r in range(cfg["timing_repeats"]):
            for model in (present if r % 2 == 0 else present[::-1]):  # back to back, order alternating
                repeats[model].append(_time_once(arms[model], setting, indices, params, device))
        for model, runs in repeats.items():
            cells[model][setting] = {"median_ms_per_image": statistics.median(run["ms_total"] for run in runs),
                                     "repeats": runs}
    result = {"space": space, "timing_images": len(indices), "timing_repeats": cfg["timing_repeats"],
              "device": device_name(device), "checkpoints": {m: a["sha256"] for m, a in arms.items()},
              "cells": cells}
    artifacts.write_sealed_json(paths.timing_file(params, space), result)
    return result
