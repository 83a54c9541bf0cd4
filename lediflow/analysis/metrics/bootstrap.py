"""Bootstrap error bars of FID and KID over the generated samples, from their cached features.

The reference set is held fixed (it is the target every cell is compared with,
so its own sampling noise is shared by the cells a table compares); the n
generated samples are drawn with replacement B times and both statistics are
recomputed. The error bar is the bootstrap standard error (the spread of the
B replicates): with B = 100 it is steadier than percentile endpoints, and a
95% interval is value +- 1.96 se.

FID of a resample is `FrechetForm.fid` of its rows (lediflow.analysis.metrics.fid): one
eigvalsh of size min(n, d), the reference's statistics and X S_r X^T computed once.
KID (Binkowski et al. 2018): the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3
over all samples and references; pairs of a resample that are the same
original sample are left out, as the unbiased estimator leaves out i = j.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lediflow.analysis.metrics.fid import FrechetForm


@dataclass(frozen=True)
class BootstrapResult:
    fid: float  # on the full sample: the value the error bar belongs to
    fid_se: float
    kid_se: float
    fid_replicates: list[float]
    kid_replicates: list[float]
    resamples: int
    seed: int


def _poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _kid_of_resample(k_xx: torch.Tensor, k_xy: torch.Tensor, kyy_term: float, index: torch.Tensor) -> float:
    same = index[:, None] == index[None, :]  # the same original sample twice: left out like i = j
    kxx = k_xx[index][:, index]
    xx = float(kxx[~same].mean())
    return xx + kyy_term - 2.0 * float(k_xy[index].mean())


def bootstrap(features: torch.Tensor, reference: torch.Tensor, resamples: int, seed: int = 0) -> BootstrapResult:
    """Standard errors of FID and KID (full-set unbiased estimate) under resampling of `features`."""
    x, y = features.double().cpu(), reference.double().cpu()
    form = FrechetForm(x, y)
    k_yy = _poly_kernel(y, y)
    m = len(y)
    kyy_term = float((k_yy.sum() - torch.diagonal(k_yy).sum()) / (m * (m - 1)))
    k_xx, k_xy = _poly_kernel(x, x), _poly_kernel(x, y)
    gen = torch.Generator().manual_seed(seed)
    fids, kids = [], []
    for _ in range(resamples):
        index = torch.randint(len(x), (len(x),), generator=gen)
        fids.append(form.fid(index))
        kids.append(_kid_of_resample(k_xx, k_xy, kyy_term, index))
    fid_t, kid_t = torch.tensor(fids), torch.tensor(kids)
    return BootstrapResult(form.fid(), float(fid_t.std()), float(kid_t.std()), fids, kids, resamples, seed)
