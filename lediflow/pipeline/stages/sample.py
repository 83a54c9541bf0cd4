"""sample: one flow model at one (solver, steps) cell -> samples.npy, grid.png, record.json."""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from lediflow.core import artifacts

from lediflow.pipeline import paths
from lediflow.method.checkpoint import load_model
from lediflow.pipeline.config import Params
from lediflow.pipeline.images import save_grid
from lediflow.method.learned_prior import LearnedPrior
from lediflow.method.numerics import configure
from lediflow.method.device import resolve_device, to_model_range, to_uint8
from lediflow.method.sampling import sync, sample_batch
from lediflow.pipeline.stages.common import file_hash, load_codec

if TYPE_CHECKING:  # diffusers costs seconds per process: a pixel cell never decodes, so never imports it
    from lediflow.method.autoencoder import LatentCodec


def load_source(params: Params, space: str, prior_kind: str, device: torch.device) -> LearnedPrior | None:
    """The source distribution of a flow model: None for N(0, I), else the learned prior of its space."""
    if prior_kind in paths.GAUSSIAN_SOURCES:  # OT-CFM pairs N(0, I) with data in training only
        return None
    return LearnedPrior.load(paths.model_dir(params, paths.prior_name(space)),
                             paths.model_dir(params, paths.latent_sampler_name(space)), params, device)


def load_decoder(params: Params, space: str, device: torch.device) -> LatentCodec | None:
    """Latent flows produce normalised latents: the autoencoder turns them into images."""
    return load_codec(params, device) if space == "latent" else None


def decode_timed(codec: LatentCodec | None, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, float]:
    if codec is None:
        return x, 0.0
    sync(device)
    started = time.perf_counter()
    images = codec.decode(x)
    sync(device)
    return images, time.perf_counter() - started


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def sample_cell(params: Params, model: str, setting: str, progress: bool = True) -> dict:
    space, prior_kind, solver, steps, tol = paths.check_cell(params, model, setting)
    device = resolve_device(params["run"]["device"])
    cfg, seed = params["sample"], params["run"]["seed"]
    zero_step = setting in paths.ZERO_STEP_SETTINGS
    prior = load_source(params, space, prior_kind, device)
    # A zero-step cell draws from the prior alone: no flow is loaded (or needs to exist yet).
    weights_dir = paths.model_dir(params, paths.prior_name(space) if zero_step else model)
    flow_model = None if zero_step else load_model(weights_dir, device)
    codec = load_decoder(params, space, device)
    arch = prior.auxiliary.arch if zero_step else flow_model.arch
    # run.precision / run.compile; adaptive solvers keep the network in fp32 (lediflow/method/numerics.py)
    adaptive = solver in paths.ADAPTIVE_SOLVERS
    if flow_model is not None:
        flow_model = configure(params, device).velocity(flow_model, adaptive)
    shape = (arch["channels"], arch["resolution"], arch["resolution"])
    count, batch = cfg["num_samples"], cfg["batch_size"]
    image_shape = artifacts.read_manifest(paths.data_dir(params), "run `lediflow prepare-data` (or snakemake) first")["shape"]
    images = np.empty((count, *image_shape), dtype=np.uint8)
    # Untimed warm-up (lazy initialisation, allocator growth) so the first batch is not charged for it.
    warm = sample_batch(flow_model, prior, [0], seed, shape, solver, steps, tol, device)
    decode_timed(codec, warm.images, device)
    nfe_per_batch, sampler_nfe, seconds = [], [], {"prior": 0.0, "flow": 0.0, "decode": 0.0}
    t_lo, t_hi = float("inf"), float("-inf")
    for start in tqdm(range(0, count, batch), desc=f"{model} {setting}", disable=not progress):
        indices = list(range(start, min(count, start + batch)))
        out = sample_batch(flow_model, prior, indices, seed, shape, solver, steps, tol, device)
        decoded, out.seconds["decode"] = decode_timed(codec, out.images, device)
        images[start : start + len(indices)] = to_uint8(decoded).cpu().numpy()
        nfe_per_batch.append(out.nfe)
        sampler_nfe.append(out.sampler_nfe)
        t_lo, t_hi = min(t_lo, out.t_range[0]), max(t_hi, out.t_range[1])
        for key, value in out.seconds.items():
            seconds[key] += value
    record = {
        "model": model, "space": space, "prior": prior_kind, "solver": solver, "steps": steps, "tol": tol,
        "setting": setting, "num_samples": count, "batch_size": batch, "seed": seed,
        # NFE per image = calls of the network in the solve that produced it (mean over batches for dopri5).
        "nfe": float(np.mean(nfe_per_batch)), "nfe_per_batch": nfe_per_batch,
        "latent_sampler_nfe": float(np.mean(sampler_nfe)),
        "t_range": [t_lo, t_hi],  # the times the velocity network was called at (inside [0, 1])
        "seconds_per_image": {k: v / count for k, v in seconds.items()},
        "precision": "fp32" if adaptive or zero_step else params["run"]["precision"],
        "device": device_name(device), "checkpoint_sha256": file_hash(weights_dir / "model.safetensors"),
    }
    record["seconds_per_image"]["total"] = sum(record["seconds_per_image"].values())
    folder = paths.sample_dir(params, model, setting)
    with artifacts.staged_dir(folder) as stage:
        np.save(stage / "samples.npy", images)
        save_grid(stage / "grid.png", to_model_range(torch.from_numpy(images[: cfg["grid_images"]])))
        artifacts.write_json_atomic(stage / "record.json", record)
        artifacts.write_manifest(stage, "sample", {"run": params["run"], "sample": cfg},
                                 weights={model: record["checkpoint_sha256"]}, extra={"record": record})
    return record
