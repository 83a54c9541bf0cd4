"""Flow matching: couplings of (x0, x1), the linear path, its target and loss (docs/method.md 2.3).

Time runs from t=0 (prior sample x0) to t=1 (data x1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lediflow.method.learned_prior import LearnedPrior
from lediflow.method.networks.auxiliary import AuxiliaryModel
from lediflow.method.prior_loss import reparameterize


def gaussian_coupling(x1: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Baseline: x0 ~ N(0, I), independent of x1."""
    return torch.randn(x1.shape, generator=generator, device=x1.device)


def ot_partner(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The exact minibatch optimal transport plan between x0 and x1 under squared Euclidean cost, from POT's
    network simplex (ot.emd), as the x0 row each x1 is transported from (Tong et al. 2023, eq. 16)."""
    import ot  # the POT library: imported here so the rest of the method does not need it

    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()) ** 2
    n = len(x1)
    uniform = torch.full((n,), 1.0 / n, dtype=torch.float64)
    plan = ot.emd(uniform.numpy(), uniform.numpy(), cost.cpu().numpy())  # a permutation matrix / n
    return torch.from_numpy(plan.argmax(axis=0)).to(x1.device)


def ot_coupling(x1: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """OT-CFM (Tong et al. 2023, eq. 16; Pooladian et al. 2023): x0 ~ N(0, I) re-paired with the batch by the
    exact optimal transport plan (ot_partner)."""
    x0 = gaussian_coupling(x1, generator)
    return x0[ot_partner(x0, x1)]


def prior_sample(prior: AuxiliaryModel, z: torch.Tensor, std_scale: float, generator: torch.Generator
                 ) -> torch.Tensor:
    """x0 = mu_D(z) + s * sigma_D(z) * eps, eps ~ N(0, I)."""
    mean, logvar = prior.decode(z)
    eps = torch.randn(mean.shape, generator=generator, device=mean.device)
    return mean + std_scale * torch.exp(0.5 * logvar) * eps


@torch.no_grad()
def prior_ot_coupling(x1: torch.Tensor, prior: LearnedPrior, generator: torch.Generator) -> torch.Tensor:
    """Ablation [ours]: x0 from the prior's sampling path (z from the latent sampler, independent of x1), re-paired
    with the batch by the exact minibatch OT plan, as OT-CFM re-pairs N(0, I) (Tong et al. 2023, eq. 16)."""
    x0 = prior.draw([generator] * len(x1), x1.device).x0  # one generator drawn in turn: a fresh draw per row
    return x0[ot_partner(x0, x1)]


@torch.no_grad()
def learned_coupling(x1: torch.Tensor, prior: AuxiliaryModel, std_scale: float, generator: torch.Generator
                     ) -> torch.Tensor:
    """Paired coupling [ours]: z ~ q(z | x1) of the same image, then x0 ~ P_L(. | z) with std scale s."""
    mu, logvar = prior.encode(x1)
    eps_z = torch.randn(mu.shape, generator=generator, device=mu.device)
    return prior_sample(prior, reparameterize(mu, logvar, eps_z), std_scale, generator)


def sample_time(batch: int, generator: torch.Generator, device: torch.device, scheme: str = "uniform",
                mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """t ~ U[0, 1], or logit-normal t = sigmoid(N(mean, std)) (Esser et al. 2024)."""
    if scheme == "uniform":
        return torch.rand(batch, generator=generator, device=device)
    if scheme == "logit_normal":
        return torch.sigmoid(mean + std * torch.randn(batch, generator=generator, device=device))
    raise ValueError(f"unknown time sampling {scheme!r}")


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = (1 - t) x0 + t x1 and its velocity u_t = x1 - x0 (rectified flow / CFM, Lipman et al. 2023)."""
    t_ = t.view(-1, *([1] * (x1.dim() - 1)))
    return (1 - t_) * x0 + t_ * x1, x1 - x0


@dataclass
class FlowLoss:
    total: torch.Tensor
    x0: torch.Tensor
    t: torch.Tensor


def flow_matching_loss(model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> FlowLoss:
    """L = E ||v_theta(x_t, t) - (x1 - x0)||^2, mean over pixels and batch."""
    xt, target = linear_path(x0, x1, t)
    return FlowLoss(((model(xt, t) - target) ** 2).mean(), x0, t)
