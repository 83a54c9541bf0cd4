"""interpolate and inpaint: the learned prior's extras (docs/method.md 2.5), on test images."""

from __future__ import annotations

import torch

from lediflow.core import artifacts

from lediflow.pipeline import paths

from lediflow.method import seeding
from lediflow.method.checkpoint import load_model
from lediflow.pipeline.config import Params
from lediflow.method.editing import euler, euler_inpaint, mask_for, slerp
from lediflow.core.errors import LediflowError
from lediflow.pipeline.images import save_grid
from lediflow.method.learned_prior import per_sample_randn, sample_generators
from lediflow.pipeline.sources import ImageSource
from lediflow.method.device import resolve_device
from lediflow.pipeline.stages.sample import load_source

LEARNED_FLOW = paths.flow_name("pixel", "learned")


def _setup(params: Params, needed: int):
    device = resolve_device(params["run"]["device"])
    prior = load_source(params, "pixel", "learned", device)
    flow_model = load_model(paths.model_dir(params, LEARNED_FLOW), device)
    test = ImageSource(paths.data_dir(params), "test", device)
    if len(test) < needed:
        raise LediflowError(f"the test split has {len(test)} images but {needed} are needed; lower the sample.* counts")
    return device, prior, flow_model, test


@torch.no_grad()
def interpolate(params: Params) -> dict:
    """Slerp between the posterior means of two test images, decode the prior with shared noise, run the flow."""
    cfg = params["sample"]
    pairs, points = cfg["interpolation_pairs"], cfg["interpolation_points"]
    device, prior, flow_model, test = _setup(params, 2 * pairs)
    images = test.slice(0, 2 * pairs)
    z, _ = prior.auxiliary.encode(images)
    alphas = torch.linspace(0, 1, points, device=device)
    rows = []
    for p in range(pairs):
        path = slerp(z[2 * p], z[2 * p + 1], alphas)  # (points, z_dim)
        mean, logvar = prior.auxiliary.decode(path)
        gen = sample_generators(params["run"]["seed"], seeding.STREAM_EVAL, [p], device, salt=2)
        eps = per_sample_randn(mean.shape[1:], gen, device).expand_as(mean)  # one noise for the whole strip
        x0 = mean + prior.std_scale * torch.exp(0.5 * logvar) * eps
        rows.append(torch.cat([images[2 * p : 2 * p + 1], euler(flow_model, x0, cfg["extras_steps"]),
                               images[2 * p + 1 : 2 * p + 2]]))
    folder = paths.extras_dir(params) / "interpolation"
    with artifacts.staged_dir(folder) as stage:
        save_grid(stage / "interpolation.png", torch.cat(rows), nrow=points + 2)
        artifacts.write_manifest(stage, "interpolate", {"run": params["run"], "sample": cfg}, extra={
            "layout": "one row per pair: image A, flow samples along slerp(z_A, z_B), image B"})
    return {"pairs": pairs, "points": points}


@torch.no_grad()
def inpaint(params: Params) -> dict:
    """Fill a masked region: x0 from the prior of the encoded masked image, known pixels kept on their path."""
    cfg = params["sample"]
    count = cfg["inpaint_images"]
    device, prior, flow_model, test = _setup(params, count)
    y = test.slice(0, count)
    mask = mask_for(cfg["inpaint_mask"], tuple(y.shape[1:])).to(device).expand_as(y)
    masked = y * mask  # unknown pixels at 0, the middle grey of [-1, 1]
    z, _ = prior.auxiliary.encode(masked)
    gens = sample_generators(params["run"]["seed"], seeding.STREAM_EVAL, range(count), device, salt=3)
    x0, prior_mean = prior.x0_from_z(z, gens)
    filled = euler_inpaint(flow_model, x0, y, mask, cfg["extras_steps"])
    unknown = 1 - mask
    metrics = {
        "images": count, "mask": cfg["inpaint_mask"], "steps": cfg["extras_steps"],
        # mean squared error over the unknown pixels only, against the true test images
        "mse_unknown_flow": float((((filled - y) * unknown) ** 2).sum() / unknown.sum()),
        "mse_unknown_prior_mean": float((((prior_mean - y) * unknown) ** 2).sum() / unknown.sum()),
        "mse_unknown_grey": float((((masked - y) * unknown) ** 2).sum() / unknown.sum()),
    }
    folder = paths.extras_dir(params) / "inpainting"
    with artifacts.staged_dir(folder) as stage:
        save_grid(stage / "inpainting.png", torch.cat([masked, mask * 2 - 1, filled, y]), nrow=count)
        artifacts.write_json_atomic(stage / "metrics.json", metrics)
        artifacts.write_manifest(stage, "inpaint", {"run": params["run"], "sample": cfg}, extra={
            "rows": ["masked input", "mask (white known)", "inpainted", "original"]})
    return metrics
