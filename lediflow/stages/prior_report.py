"""prior-report: how close the learned prior is to the data (PAPER.md 6).

Measures the mean squared distance per pixel ||x0 - x1||^2 of the paired
learned coupling (z ~ q(z|y) of the same test image) against the Gaussian
coupling, and draws a grid: real | mu_D(z) paired | x0 paired | mu_D(z) and
x0 with z from the latent sampler.
"""

from __future__ import annotations

import torch

from lediflow import artifacts, paths, seeding
from lediflow.config import Params
from lediflow.learned_prior import LearnedPrior, per_sample_randn, sample_generators
from lediflow.prior import reparameterize
from lediflow.runtime import resolve_device, training_data
from lediflow.stages.sample import load_decoder
from lediflow.stages.common import file_hash
from lediflow.images import save_grid

GRID_COLUMNS = 16


@torch.no_grad()
def prior_report(params: Params, space: str = "pixel") -> dict:
    device = resolve_device(params["run"]["device"])
    seed = params["run"]["seed"]
    prior_dir = paths.model_dir(params, paths.prior_name(space))
    sampler_dir = paths.model_dir(params, paths.latent_sampler_name(space))
    prior = LearnedPrior.load(prior_dir, sampler_dir, params, device)
    test = training_data(params, space, "test", device)
    codec = load_decoder(params, space, device)
    show = (lambda x: x) if codec is None else (lambda x: codec.decode(x).clamp(-1, 1))
    count = min(params["prior"]["report_images"], len(test))
    y = test.slice(0, count)
    gens = sample_generators(seed, seeding.STREAM_EVAL, range(count), device)
    mu, logvar = prior.auxiliary.encode(y)
    z = reparameterize(mu, logvar, per_sample_randn((mu.shape[1],), gens, device))
    x0_paired, mean_paired = prior.x0_from_z(z, gens)
    x0_gauss = per_sample_randn(y.shape[1:], gens, device)
    columns = min(GRID_COLUMNS, count)
    drawn = prior.draw(sample_generators(seed, seeding.STREAM_EVAL, range(columns), device, salt=1), device)
    report = {
        "space": space,
        "distances_in": "pixels in [-1, 1]" if space == "pixel" else "normalised autoencoder latents",
        "images": count,
        "std_scale": prior.std_scale,
        "latent_sampler": params["prior"]["latent_sampler"],
        # mean over pixels and images of ||x0 - x1||^2
        "mse_paired_x0": float(((x0_paired - y) ** 2).mean()),
        "mse_paired_mean": float(((mean_paired - y) ** 2).mean()),
        "mse_gaussian_x0": float(((x0_gauss - y) ** 2).mean()),
        "latent_sampler_nfe": drawn.sampler_nfe,
    }
    report["gaussian_over_paired"] = report["mse_gaussian_x0"] / report["mse_paired_x0"]
    folder = paths.prior_report_dir(params, space)
    with artifacts.staged_dir(folder) as stage:
        rows = [show(r) for r in (y[:columns], mean_paired[:columns], x0_paired[:columns], drawn.mean, drawn.x0)]
        save_grid(stage / "prior_grid.png", torch.cat(rows), nrow=columns)
        artifacts.write_json_atomic(stage / "report.json", report)
        artifacts.write_manifest(stage, "prior-report", {"run": params["run"], "prior": params["prior"]},
                                 weights={"prior": file_hash(prior_dir / "model.safetensors")},
                                 extra={"grid_rows": ["real test images", "mu_D(z), z ~ q(z|y)", "x0 ~ P_L(.|z), paired",
                                                      "mu_D(z), z from latent sampler", "x0, z from latent sampler"]})
    return report
