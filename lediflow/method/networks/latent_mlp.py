"""Velocity MLP of the latent sampler: v(z_t, t) on vectors (docs/method.md 2.2)."""

from __future__ import annotations

import torch
from torch import nn

from lediflow.method.networks.embeddings import TimestepEmbedder


class ResidualBlock(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.net(h + c)


class LatentVelocityMLP(nn.Module):
    """v(z_t, t) of the latent sampler, optionally in standardised coordinates.

    With `standardize`, the model learns (z - shift) / scale, where shift and scale are the aggregate
    posterior's per-dimension mean and std (buffers saved with the weights): the posterior means sit far from
    unit scale, and the N(0, I) -> data path is then mostly a shift the MLP need not learn.
    """

    def __init__(self, z_dim: int, hidden: int, depth: int, standardize: bool = False) -> None:
        super().__init__()
        self.arch = {"z_dim": z_dim, "hidden": hidden, "depth": depth}
        if standardize:  # arch.json of older, unstandardised samplers lacks the key and builds the old model
            self.arch["standardize"] = True
            self.register_buffer("z_shift", torch.zeros(z_dim))
            self.register_buffer("z_scale", torch.ones(z_dim))
        self.standardize = standardize
        self.inp = nn.Linear(z_dim, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, z_dim))

    def set_statistics(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        self.z_shift.copy_(shift)
        self.z_scale.copy_(scale)

    def to_standard(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.z_shift) / self.z_scale if self.standardize else z

    def from_standard(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.z_scale + self.z_shift if self.standardize else z

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, c = self.inp(z), self.t_embedder(t)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)
