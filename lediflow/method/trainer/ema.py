"""The exponential moving average of the weights: the network every later stage uses."""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay with the usual (1 + k) / (10 + k) ramp, so early EMA weights are not stuck at init."""
    return min(decay, (1 + step) / (10 + step))


def init_ema(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], model: nn.Module, decay: float) -> None:
    # ema <- decay * ema + (1 - decay) * theta, every floating tensor in one multi-tensor launch (the same
    # elementwise ops as a per-tensor loop, so the same bits; on a GPU one kernel instead of hundreds)
    state = model.state_dict()
    floats = [name for name, value in state.items() if value.dtype.is_floating_point]
    averaged, live = [ema[n] for n in floats], [state[n].detach() for n in floats]
    torch._foreach_mul_(averaged, decay)
    torch._foreach_add_(averaged, live, alpha=1 - decay)
    for name, value in state.items():
        if not value.dtype.is_floating_point:
            ema[name].copy_(value)  # buffers such as counters follow the live network
