"""generate: images from a trained model of a finished run, at any solver setting and per-image seeds, without
touching the run (a PNG grid and an .npz of uint8 images beside each other, wherever --out says).

The same sampler as the sample stage (lediflow.method.sampling.sample_batch): image i of seed s is the same whatever
the batch size or device order, so `--seeds 0-63` here and cell images 0-63 of the run are the same draws.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lediflow.analysis import figures
from lediflow.pipeline import paths
from lediflow.method.checkpoint import load_model
from lediflow.pipeline.config import Params, load_params
from lediflow.core.errors import LediflowError
from lediflow.pipeline.images import save_grid
from lediflow.method.device import resolve_device, to_model_range, to_uint8
from lediflow.method.sampling import sample_batch
from lediflow.pipeline.stages.sample import decode_timed, load_decoder, load_source


def parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> image indices; one-line error otherwise."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds += list(range(int(low), int(high) + 1)) if high else [int(low)]
    except ValueError:
        raise LediflowError(f"--seeds {text!r}: use ranges and lists of image indices, e.g. 0-63 or 0,5,9") from None
    if not seeds or min(seeds) < 0:
        raise LediflowError(f"--seeds {text!r} names no image index >= 0; e.g. --seeds 0-63")
    return seeds


def locate_run(text: str) -> Path:
    """The --run folder; the shipped weights' default also resolves from outside the clone, through the source
    tree the package is imported from (a clone, an editable install), so `lediflow generate` works from anywhere."""
    run = Path(text)
    beside_package = Path(__file__).resolve().parents[3] / paths.SHIPPED_WEIGHTS
    if text == paths.SHIPPED_WEIGHTS and not run.is_dir() and beside_package.is_dir():
        return beside_package
    return run


def run_params(run: Path) -> Params:
    """The run's resolved params, pointed at the folder it is in now (a copied or moved run still works)."""
    if not (run / "params.yaml").is_file():
        hint = "pass a finished run's folder, e.g. --run results/default"
        if str(run) == paths.SHIPPED_WEIGHTS:  # the default, not found from here: say where it lives
            hint = f"run it from the repository's root, where the committed weights are, or {hint}"
        raise LediflowError(f"{run} holds no params.yaml; {hint}")
    params = copy.deepcopy(load_params([run / "params.yaml"]))
    params["run"]["results_dir"], params["run"]["name"] = str(run.parent), run.name
    return params


@torch.no_grad()
def draw(params: Params, model: str, setting: str, seeds: list[int], batch: int, device: torch.device,
         progress: bool = False) -> tuple[np.ndarray, float]:
    """uint8 images (seed order) of one model at one setting, and their mean NFE."""
    space, prior_kind, solver, steps, tol = paths.check_cell(params, model, setting)
    weights = paths.model_dir(params, paths.prior_name(space) if setting in paths.ZERO_STEP_SETTINGS else model)
    if not (weights / "model.safetensors").is_file():
        raise LediflowError(f"{weights} holds no trained weights; train them (`snakemake --cores all` with the "
                            f"run's params, or `dvc pull`), or use the shipped ones: --run {paths.SHIPPED_WEIGHTS}")
    prior = load_source(params, space, prior_kind, device)
    flow = None if setting in paths.ZERO_STEP_SETTINGS else load_model(weights, device)
    codec = load_decoder(params, space, device)
    arch = prior.auxiliary.arch if flow is None else flow.arch
    shape = (arch["channels"], arch["resolution"], arch["resolution"])
    chunks = [seeds[i:i + batch] for i in range(0, len(seeds), batch)]
    images, nfe = [], []
    for chunk in tqdm(chunks, desc=f"{model} {setting}", disable=not progress):
        drawn = sample_batch(flow, prior, chunk, params["run"]["seed"], shape, solver, steps, tol, device)
        decoded, _ = decode_timed(codec, drawn.images, device)
        images.append(to_uint8(decoded).cpu().numpy())
        nfe.append(drawn.nfe)
    return np.concatenate(images), float(np.mean(nfe))


def equal_nfe_grid(params: Params, space: str, steps: list[int], seeds: list[int], device_name: str) -> list[Path]:
    """figures/equal_nfe_<space>.png: the baseline and LeDiFlow at each Euler step count from the same seeds."""
    device = resolve_device(device_name)
    strips = {prior: {s: draw(params, paths.flow_name(space, prior), f"euler-{s}", seeds, len(seeds), device)[0]
                      for s in steps} for prior in ("gaussian", "learned")}
    return figures.equal_nfe_grid(strips, space, paths.figures_dir(params))


@torch.no_grad()
def generate(run: Path, model: str, setting: str, seeds: list[int], batch: int, device_name: str, out: Path,
             progress: bool = True) -> dict:
    params = run_params(run)
    stack, nfe = draw(params, model, setting, seeds, batch, resolve_device(device_name), progress)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{model}-{setting}"
    np.savez_compressed(out / f"{stem}.npz", images=stack, seeds=np.asarray(seeds), run_seed=params["run"]["seed"])
    save_grid(out / f"{stem}.png", to_model_range(torch.from_numpy(stack)))
    return {"images": len(stack), "nfe": nfe, "png": str(out / f"{stem}.png"),
            "npz": str(out / f"{stem}.npz")}
