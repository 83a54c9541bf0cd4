"""Latent interpolation and inpainting with the learned prior (docs/method.md 2.5)."""

from __future__ import annotations

import torch
from torch import nn


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation per row: sin((1-a)W)/sin W * a + sin(aW)/sin W * b, W the angle between a and b."""
    a_, b_ = a[None], b[None]
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))[None, ..., None]
    alpha = alpha.view(-1, *([1] * a.dim()))
    sin = torch.sin(omega)
    lerp = (1 - alpha) * a_ + alpha * b_
    spherical = (torch.sin((1 - alpha) * omega) * a_ + torch.sin(alpha * omega) * b_) / sin.clamp_min(1e-12)
    return torch.where(sin.abs() < 1e-6, lerp, spherical)


def mask_for(kind: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Known-pixel mask M (1 known, 0 to fill) of one image shape (C, H, W)."""
    _, height, width = shape
    mask = torch.ones(shape)
    if kind == "center":
        mask[:, height // 4 : height - height // 4, width // 4 : width - width // 4] = 0
    elif kind == "left":
        mask[:, :, : width // 2] = 0
    elif kind == "bottom":
        mask[:, height // 2 :, :] = 0
    else:
        raise ValueError(f"unknown mask {kind!r}")
    return mask


@torch.no_grad()
def euler_inpaint(velocity: nn.Module, x0: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, steps: int
                  ) -> torch.Tensor:
    """Euler from t=0 to 1; after each step the known pixels are put back on their path (1 - t) x0 + t y."""
    x = x0.clone()
    for k in range(steps):
        t0, t1 = k / steps, (k + 1) / steps
        x = x + (t1 - t0) * velocity(x, torch.full((x.shape[0],), t0, device=x.device))
        x = mask * ((1 - t1) * x0 + t1 * y) + (1 - mask) * x  # known region follows the straight path to y
    return x


@torch.no_grad()
def euler(velocity: nn.Module, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Plain Euler from t=0 to 1 (the unconstrained case of euler_inpaint)."""
    return euler_inpaint(velocity, x0, torch.zeros_like(x0), torch.zeros_like(x0), steps)
