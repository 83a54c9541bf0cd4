"""The bare PyTorch training step the benchmarks measure against (no EMA, logging or guards), and how the
Trainer's steady rate is read off its own metrics so both clocks leave out the same warm-up."""

from __future__ import annotations

import json
from pathlib import Path

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


def steady_images_per_s(metrics_path: Path, warmup_steps: int) -> float:
    """Images per second of a Trainer run after its first `warmup_steps`, from the Trainer's own metrics windows.

    The bare loops leave their warm-up steps off the clock (allocator, first-call dispatch, autotuning); timing
    the Trainer's whole fit() would charge it for them, so both clocks start after the same warm-up. Each window
    spans log_every steps of everything the Trainer does per step (generators, NaN guards, EMA, logging); the
    one-off costs (construction, the final checkpoint) are outside every window.
    """
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    # a window's images_per_s is batch * span / its seconds, so the pooled rate is sum(span) / sum(span / rate)
    spans, per_image, previous = 0, 0.0, 0
    for record in records:
        span = record["step"] - previous
        if previous >= warmup_steps:
            spans += span
            per_image += span / record["images_per_s"]
        previous = record["step"]
    if spans == 0:
        raise ValueError(f"no metrics window after step {warmup_steps} in {metrics_path}")
    return spans / per_image
