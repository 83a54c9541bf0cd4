"""prior-report: how close the learned prior is to the data (docs/method.md 6).

Measures the mean squared distance per pixel ||x0 - x1||^2 of the paired
learned coupling (z ~ q(z|y) of the same test image) against the Gaussian
coupling, and draws a grid: real | mu_D(z) paired | x0 paired | mu_D(z) and
x0 with z from the latent sampler. The latent sampler is scored on its own: the
FID of mu_D(z), z from the sampler, against mu_D(z), z from test posteriors.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from lediflow.core import artifacts

from lediflow.pipeline import paths

from lediflow.method import seeding
from lediflow.pipeline.config import Params
from lediflow.pipeline.data import cache_dir
from lediflow.analysis.metrics.bootstrap import bootstrap
from lediflow.analysis.metrics.inception import InceptionFeatures, resolve_weights
from lediflow.method.learned_prior import LearnedPrior, per_sample_randn, sample_generators
from lediflow.method.prior_loss import reparameterize
from lediflow.pipeline.sources import ImageSource, LatentSource
from lediflow.method.device import resolve_device, to_uint8
from lediflow.pipeline.stages.common import training_data
from lediflow.pipeline.stages.sample import load_decoder
from lediflow.pipeline.stages.common import file_hash
from lediflow.pipeline.images import save_grid

GRID_COLUMNS = 16
FIDELITY_BATCH = 250


@torch.no_grad()
def _decoded_means(prior: LearnedPrior, z_batches: Iterator[torch.Tensor], show: Callable) -> np.ndarray:
    """uint8 images of mu_D(z) (decoded by the autoencoder in latent space), batch by batch."""
    return np.concatenate([to_uint8(show(prior.auxiliary.decode(z)[0])).cpu().numpy() for z in z_batches])


@torch.no_grad()
def sampler_fidelity(params: Params, prior: LearnedPrior, test: ImageSource | LatentSource, show: Callable,
                     device: torch.device) -> dict:
    """FID of mu_D(z), z from the latent sampler, against mu_D(z), z ~ q(z | y) of real test images.

    Both sides go through the same decoder, so the distance isolates the latent sampler: 0 for a sampler that
    reproduces the aggregate posterior exactly (docs/method.md 2.2).
    """
    seed, count = params["run"]["seed"], min(params["prior"]["fidelity_images"], len(test))
    starts = range(0, count, FIDELITY_BATCH)

    def posterior_z(start: int) -> torch.Tensor:
        stop = min(count, start + FIDELITY_BATCH)
        gens = sample_generators(seed, seeding.STREAM_EVAL, range(start, stop), device, salt=2)
        mu, logvar = prior.auxiliary.encode(test.sample_slice(start, stop, gens[0]))
        return reparameterize(mu, logvar, per_sample_randn((mu.shape[1],), gens, device))

    def sampler_z(start: int) -> torch.Tensor:
        stop = min(count, start + FIDELITY_BATCH)
        return prior.sample_z(sample_generators(seed, seeding.STREAM_EVAL, range(start, stop), device, salt=3),
                              device)[0]

    real = _decoded_means(prior, (posterior_z(s) for s in starts), show)
    drawn = _decoded_means(prior, (sampler_z(s) for s in starts), show)
    inception = InceptionFeatures(resolve_weights(params["score"]["inception_weights"], cache_dir(params)), device)
    batch = params["score"]["batch_size"]
    a, b = inception(drawn, batch), inception(real, batch)
    errors = bootstrap(a, b, params["score"]["bootstrap_resamples"], seed)
    return {"sampler_fid": errors.fid, "sampler_fid_se": errors.fid_se, "sampler_fid_images": count}


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
    report.update(sampler_fidelity(params, prior, test, show, device))
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
