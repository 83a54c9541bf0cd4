"""Drawing images from a trained flow: x0 from the source distribution, then the ODE to t=1.

Image i always uses the generator seeded by (run seed, STREAM_SAMPLE, i): its
x0 (and, for the learned prior, its z) do not depend on the batch it lands
in. For fixed-grid solvers the whole trajectory is per-image, so samples are
independent of the batch size; dopri5 picks one step sequence per batch
(torchdiffeq's error norm spans the batch), so its samples are not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from lediflow.method import seeding
from lediflow.method.learned_prior import LearnedPrior, per_sample_randn, sample_generators
from lediflow.method.names import ZERO_STEP_SETTINGS
from lediflow.method.solvers import solve


def sync(device: torch.device) -> None:
    """Wait for the GPU so wall-clock timings measure the work, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class SampleBatch:
    images: torch.Tensor  # x(1), model range [-1, 1] (not clipped)
    nfe: int  # velocity-network calls for this batch
    sampler_nfe: int  # latent-sampler calls for this batch (0 for the Gaussian baseline)
    seconds: dict[str, float] = field(default_factory=dict)  # prior / flow / decode wall time
    t_range: tuple[float, float] = (0.0, 1.0)  # smallest and largest t the velocity network was called at


@torch.no_grad()
def sample_batch(flow_model: nn.Module, prior: LearnedPrior | None, indices: Sequence[int], seed: int,
                 shape: Sequence[int], solver: str, steps: int | None, tol: float | None,
                 device: torch.device) -> SampleBatch:
    """Images `indices` of the run: x0 ~ N(0, I) (prior None) or the learned prior, then solve to t=1.

    The zero-step solvers (prior-x0, prior-mean) stop before the flow: their image is the prior's x0 or its
    mean mu_D(z), at NFE 0, and `flow_model` may be None.
    """
    sync(device)
    started = time.perf_counter()
    gens = sample_generators(seed, seeding.STREAM_SAMPLE, indices, device)
    if prior is None:
        x0, sampler_nfe = per_sample_randn(shape, gens, device), 0
    else:
        draw = prior.draw(gens, device)
        x0, sampler_nfe = draw.x0, draw.sampler_nfe
    sync(device)
    prior_done = time.perf_counter()
    if solver in ZERO_STEP_SETTINGS:
        if prior is None:
            raise ValueError(f"{solver} needs the learned prior")
        image = draw.x0 if solver == "prior-x0" else draw.mean  # docs/method.md 2.2: x0 ~ P_L(. | z), or its mean
        return SampleBatch(image, 0, sampler_nfe, {"prior": prior_done - started, "flow": 0.0, "decode": 0.0},
                           (0.0, 0.0))
    tolerance = {} if tol is None else {"rtol": tol, "atol": tol}
    result = solve(flow_model, x0, solver, steps, **tolerance)
    sync(device)
    flow_done = time.perf_counter()
    return SampleBatch(result.x1, result.nfe, sampler_nfe,
                       {"prior": prior_done - started, "flow": flow_done - prior_done, "decode": 0.0}, result.t_range)
