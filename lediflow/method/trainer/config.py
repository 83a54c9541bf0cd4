"""What one training run is told (TrainConfig), what it reports (TrainResult), and its learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from lediflow.core.errors import LediflowError

# loss_fn(model, generator) -> (scalar loss, extra scalars to log)
LossFn = Callable[[nn.Module, torch.Generator], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> "TrainConfig":
        return cls(**section)


@dataclass
class TrainResult:
    step: int
    resumed_from: int
    train_seconds: float
    samples_seen: int
    parameters: int
    final_loss: float
    device: str = ""  # device_name of the last part of the training (a resumed one may have had others)


class NonFiniteLossError(LediflowError):
    """The loss or the gradient became NaN/inf."""


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr over warmup_steps, then constant."""
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
