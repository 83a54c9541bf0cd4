"""Velocity MLP of the latent sampler: v(z_t, t) on vectors (PAPER.md 2.2)."""

from __future__ import annotations

import torch
from torch import nn

from lediflow.models.embeddings import TimestepEmbedder


class ResidualBlock(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.net(h + c)


class LatentVelocityMLP(nn.Module):
    def __init__(self, z_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.arch = {"z_dim": z_dim, "hidden": hidden, "depth": depth}
        self.inp = nn.Linear(z_dim, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, z_dim))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, c = self.inp(z), self.t_embedder(t)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)
