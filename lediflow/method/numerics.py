"""How a run computes on its device: autocast dtype, TF32, fused AdamW and torch.compile.

Mixed precision here is autocast only: weights, EMA weights, optimiser state and checkpoints stay fp32, and
the ODE state of a sampler stays fp32 too (the network's velocity is cast back before the solver uses it).
bf16 needs no loss scaling. Adaptive solvers (dopri5) call the network in fp32 whatever the run's precision:
their error control at tolerances near 1e-5 cannot work on bf16's 8-bit mantissa.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Numerics:
    device: torch.device
    precision: str = "fp32"
    compile: bool = False

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return DTYPES[self.precision]

    def autocast(self) -> AbstractContextManager:
        """The context a training step's forward pass runs in."""
        dtype = self.autocast_dtype
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def fingerprint(self) -> dict[str, str]:
        """What changes the optimisation path (compile does not): empty for fp32, so older checkpoints resume."""
        return {} if self.precision == "fp32" else {"precision": self.precision}

    def optimizer(self, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """AdamW; the fused CUDA kernel on a GPU (one launch per step instead of one per tensor)."""
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=self.device.type == "cuda")

    def maybe_compile(self, model: nn.Module) -> nn.Module:
        return torch.compile(model) if self.compile else model

    def velocity(self, model: nn.Module, adaptive: bool = False) -> nn.Module:
        """The network a sampler calls: compiled and autocast as the run says, fp32 for adaptive solvers."""
        if adaptive or (self.autocast_dtype is None and not self.compile):
            return model
        return AutocastVelocity(self.maybe_compile(model), self.autocast_dtype, self.device.type)


class AutocastVelocity(nn.Module):
    """v(x, t) under autocast, returned in the dtype of x so the solver's state stays fp32."""

    def __init__(self, net: nn.Module, dtype: torch.dtype | None, device_type: str) -> None:
        super().__init__()
        self.net, self.dtype, self.device_type = net, dtype, device_type

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self.net(x, t)
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.net(x, t).to(x.dtype)


def configure(params: dict, device: torch.device) -> Numerics:
    """The run's numerics on `device`; on CUDA also the process-wide TF32 switches (run.tf32)."""
    run = params["run"]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(run["tf32"])
        torch.backends.cudnn.allow_tf32 = bool(run["tf32"])
    return Numerics(device, run["precision"], bool(run["compile"]))
