"""ODE solvers for dx/dt = v(x, t) from t=0 to t=1, through torchdiffeq, with exact NFE.

Fixed-grid methods step exactly on linspace(0, 1, steps + 1); adaptive dopri5
uses rtol/atol and is made to land on t = 1 (torchdiffeq's `step_t`) instead
of stepping past it and interpolating back: the velocity network is trained
on t in [0, 1] only, so it is never called outside. NFE is counted by
wrapping the velocity function, never derived from the step count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torchdiffeq import odeint

from lediflow.method.names import ADAPTIVE_SOLVERS, FIXED_GRID_SOLVERS

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # v(x, t) with t of shape (B,)

FIXED_GRID = FIXED_GRID_SOLVERS
ADAPTIVE = ADAPTIVE_SOLVERS
SOLVERS = FIXED_GRID + ADAPTIVE
# Velocity evaluations per step of each fixed-grid method (for tests and tables, not for counting).
EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun3": 3, "rk4": 4}


class CountingVelocity:
    """Wraps v(x, t) as torchdiffeq's f(t, x) and counts every call (the NFE)."""

    def __init__(self, velocity: Velocity) -> None:
        self.velocity = velocity
        self.nfe = 0
        self.t_min, self.t_max = float("inf"), float("-inf")  # the times the network was asked about

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        self.t_min, self.t_max = min(self.t_min, float(t)), max(self.t_max, float(t))
        return self.velocity(x, t.to(x.dtype).expand(x.shape[0]))


@dataclass
class SolveResult:
    x1: torch.Tensor
    nfe: int
    t_range: tuple[float, float]  # smallest and largest t the velocity network saw


@torch.no_grad()
def solve(velocity: Velocity, x0: torch.Tensor, solver: str, steps: int | None = None,
          rtol: float = 1e-5, atol: float = 1e-5) -> SolveResult:
    """Integrate from t=0 (x0) to t=1; returns x(1) and the NFE actually used."""
    counted = CountingVelocity(velocity)
    if solver in FIXED_GRID:
        if not steps or steps < 1:
            raise ValueError(f"fixed-grid solver {solver} needs steps >= 1")
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).to(x0.device, x0.dtype)
        path = odeint(counted, x0, grid, method=solver)
    elif solver in ADAPTIVE:
        grid = torch.tensor([0.0, 1.0], dtype=x0.dtype, device=x0.device)
        # step_t = [1]: a step that would cross t = 1 is shortened to end on it (no evaluation at t > 1).
        options = {"step_t": grid[-1:].to(torch.float64)}
        path = odeint(counted, x0, grid, method=solver, rtol=rtol, atol=atol, options=options)
    else:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    return SolveResult(path[-1], counted.nfe, (counted.t_min, counted.t_max))
