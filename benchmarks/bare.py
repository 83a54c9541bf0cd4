"""The bare PyTorch training step the benchmarks measure against: no EMA, logging or guards."""

from __future__ import annotations

import torch

from lediflow.method.flow_matching import flow_matching_loss


def bare_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x1: torch.Tensor, gen: torch.Generator) -> None:
    """One AdamW step of the flow-matching loss (docs/method.md eq. 2) with clipping at 1, as the trainer takes it."""
    x0 = torch.randn(x1.shape, generator=gen)
    loss = flow_matching_loss(model, x0, x1, torch.rand(x1.shape[0], generator=gen)).total
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
