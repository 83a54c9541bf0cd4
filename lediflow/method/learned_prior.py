"""The learned prior at inference: z from the latent sampler, x0 ~ P_L(. | z) (docs/method.md 2.2, 2.3).

Every image i draws its noise from its own generator seeded by (seed, stream,
i), so samples do not depend on batch size or on how the work is split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from lediflow.method import seeding
from lediflow.method.checkpoint import load_model
from lediflow.method.networks.auxiliary import AuxiliaryModel
from lediflow.method.solvers import solve


def per_sample_randn(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device
                     ) -> torch.Tensor:
    """One N(0, I) draw of `shape` per generator, stacked."""
    return torch.stack([torch.randn(tuple(shape), generator=g, device=device) for g in generators])


def sample_generators(seed: int, stream: int, indices: Sequence[int], device: torch.device, salt: int = 0
                      ) -> list[torch.Generator]:
    return [seeding.generator(device, seed, stream, salt, int(i)) for i in indices]


@dataclass
class PriorDraw:
    x0: torch.Tensor
    z: torch.Tensor
    mean: torch.Tensor
    sampler_nfe: int


class LearnedPrior:
    """Auxiliary decoder + latent sampler (flow MLP or N(0, I))."""

    def __init__(self, auxiliary: AuxiliaryModel, sampler: torch.nn.Module | None, sampler_solver: str,
                 sampler_steps: int, std_scale: float) -> None:
        self.auxiliary, self.sampler = auxiliary, sampler
        self.sampler_solver, self.sampler_steps, self.std_scale = sampler_solver, sampler_steps, std_scale

    @classmethod
    def load(cls, prior_dir: Path, sampler_dir: Path | None, params: dict, device: torch.device) -> "LearnedPrior":
        auxiliary = load_model(prior_dir, device)
        use_flow = params["prior"]["latent_sampler"] == "flow"
        sampler = load_model(sampler_dir, device) if use_flow and sampler_dir is not None else None
        cfg = params["latent_sampler"]
        return cls(auxiliary, sampler, cfg["solver"], cfg["steps"], params["prior"]["std_scale"])

    @torch.no_grad()
    def sample_z(self, generators: Sequence[torch.Generator], device: torch.device) -> tuple[torch.Tensor, int]:
        """z(1) of the latent sampler from z(0) ~ N(0, I); (z, NFE of the sampler)."""
        z0 = per_sample_randn((self.auxiliary.z_dim,), generators, device)
        if self.sampler is None:
            return z0, 0
        result = solve(self.sampler, z0, self.sampler_solver, self.sampler_steps)
        return self.sampler.from_standard(result.x1), result.nfe  # back from the standardised coordinates

    @torch.no_grad()
    def x0_from_z(self, z: torch.Tensor, generators: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 = mu_D(z) + s * sigma_D(z) * eps with per-sample eps; returns (x0, mu_D)."""
        mean, logvar = self.auxiliary.decode(z)
        eps = per_sample_randn(mean.shape[1:], generators, z.device)
        return mean + self.std_scale * torch.exp(0.5 * logvar) * eps, mean

    @torch.no_grad()
    def draw(self, generators: Sequence[torch.Generator], device: torch.device) -> PriorDraw:
        z, nfe = self.sample_z(generators, device)
        x0, mean = self.x0_from_z(z, generators)
        return PriorDraw(x0, z, mean, nfe)

