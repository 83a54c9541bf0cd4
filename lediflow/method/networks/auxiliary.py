"""The auxiliary model of LeDiFlow: encoder theta_E and decoder theta_D (docs/method.md 2.1).

Encoder: y -> (mu_E(y), log sigma_E(y)^2) over z. Decoder: z -> per-pixel
(mu_D(z), log sigma_D(z)^2), the learned prior P_L(x | z) = N(mu_D, sigma_D^2).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
    )


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU(),
    )


class AuxiliaryModel(nn.Module):
    """Convolutional encoder to q(z|y) and decoder to P_L(x|z)."""

    def __init__(self, resolution: int, channels: int, z_dim: int, widths: list[int],
                 logvar_min: float = -10.0, logvar_max: float = 2.0) -> None:
        super().__init__()
        levels = len(widths)
        self.bottleneck = resolution // 2 ** (levels - 1)
        if self.bottleneck * 2 ** (levels - 1) != resolution or self.bottleneck < 1:
            raise ValueError(f"resolution {resolution} cannot be halved {levels - 1} times; change prior.channels")
        self.arch = {"resolution": resolution, "channels": channels, "z_dim": z_dim, "widths": list(widths),
                     "logvar_min": logvar_min, "logvar_max": logvar_max}
        self.logvar_min, self.logvar_max = logvar_min, logvar_max
        self.channels, self.z_dim, self.widths = channels, z_dim, list(widths)
        enc, c_prev = [], channels
        for i, width in enumerate(widths):
            enc.append(_conv_block(c_prev, width, stride=1 if i == 0 else 2))
            c_prev = width
        self.encoder = nn.Sequential(*enc)
        flat = widths[-1] * self.bottleneck ** 2
        self.to_posterior = nn.Linear(flat, 2 * z_dim)
        self.from_z = nn.Linear(z_dim, flat)
        dec = [_conv_block(widths[-1], widths[-1], stride=1)]
        for c_in, c_out in zip(widths[::-1][:-1], widths[::-1][1:]):
            dec.append(_up_block(c_in, c_out))
        self.decoder = nn.Sequential(*dec)
        self.to_pixels = nn.Conv2d(widths[0], 2 * channels, 3, padding=1)

    def encode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|y) = N(mu_E, exp(logvar_E))."""
        h = self.encoder(y).flatten(1)
        mu, logvar = self.to_posterior(h).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def forward(self, y: torch.Tensor, eps_z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Training pass: (mu_E, logvar_E, mu_D, logvar_D) with z = mu_E + sigma_E * eps_z.

        One forward() (rather than encode/decode calls) so DDP sees the whole graph.
        """
        mu_e, logvar_e = self.encode(y)
        mean, logvar = self.decode(mu_e + torch.exp(0.5 * logvar_e) * eps_z)
        return mu_e, logvar_e, mean, logvar

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P_L(x|z) = N(mu_D, exp(logvar_D)), logvar clamped to [logvar_min, logvar_max]."""
        h = self.from_z(z).view(z.shape[0], self.widths[-1], self.bottleneck, self.bottleneck)
        mean, logvar = self.to_pixels(self.decoder(h)).chunk(2, dim=1)
        return mean, logvar.clamp(self.logvar_min, self.logvar_max)
