"""Losses of the auxiliary model (docs/method.md 2.1).

All reconstruction terms are per pixel, averaged; the KL is summed over z
and divided by the pixel count, so kl_weight is comparable across resolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch



def gaussian_nll(y: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Plain Gaussian NLL per pixel: 0.5 * ((y - mu)^2 / sigma^2 + log sigma^2). Its gradient on mu is scaled by 1/sigma^2."""
    return 0.5 * ((y - mean) ** 2 * torch.exp(-logvar) + logvar)


def beta_nll(y: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, beta: float) -> torch.Tensor:
    """beta-NLL (Seitzer et al. 2022): NLL * sg(sigma^(2 beta))."""
    return gaussian_nll(y, mean, logvar) * torch.exp(beta * logvar).detach()


def variance_guided_loss(y: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """VGL [ours]: (y - mu)^2 + sg((y - mu)^2) * exp(-logvar) + logvar.

    The mean gets the undamped squared-error gradient whatever sigma is; the
    variance is fitted by NLL to the detached residual (optimum logvar = log r^2).
    """
    residual = (y - mean) ** 2
    return residual + residual.detach() * torch.exp(-logvar) + logvar


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(0, I)) per sample, summed over z."""
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps."""
    return mu + torch.exp(0.5 * logvar) * noise


@dataclass
class PriorLoss:
    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    mse: torch.Tensor


def prior_loss(model: torch.nn.Module, y: torch.Tensor, eps_z: torch.Tensor, loss: str, kl_weight: float,
               beta: float = 0.5) -> PriorLoss:
    """Reconstruction likelihood of y under P_L(.|z), z ~ q(z|y), plus kl_weight * KL."""
    mu_e, logvar_e, mean, logvar = model(y, eps_z)  # z = mu_E + sigma_E * eps_z inside
    if loss == "vgl":
        rec = variance_guided_loss(y, mean, logvar)
    elif loss == "nll":
        rec = gaussian_nll(y, mean, logvar)
    elif loss == "beta_nll":
        rec = beta_nll(y, mean, logvar, beta)
    else:
        raise ValueError(f"unknown prior loss {loss!r}")
    pixels = y[0].numel()
    kl = kl_to_standard_normal(mu_e, logvar_e).mean() / pixels
    rec = rec.mean()
    return PriorLoss(rec + kl_weight * kl, rec, kl, ((y - mean) ** 2).mean().detach())
