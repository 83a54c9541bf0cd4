"""Bootstrap error bars of FID and KID over the generated samples, from their cached features.

The reference set is held fixed (it is the target every cell is compared with,
so its own sampling noise is shared by the cells a table compares); the n
generated samples are drawn with replacement B times and both statistics are
recomputed. The error bar is the bootstrap standard error (the spread of the
B replicates): with B = 100 it is steadier than percentile endpoints, and a
95% interval is value +- 1.96 se.

FID of a resample (Heusel et al. 2017, eq. 6): ||m - m_r||^2 + tr S + tr S_r
- 2 tr (S S_r)^(1/2). With A the centred resample (n x d), S = A^T A / (n - 1)
and the nonzero eigenvalues of S S_r are those of A S_r A^T / (n - 1), an
n x n matrix: one eigvalsh of size min(n, d) per resample (the n x n form when
there are fewer samples than feature dimensions, as with 1000 Inception
features of 2048 dimensions; else S_r^(1/2) S S_r^(1/2)) instead of a sqrtm.
KID (Binkowski et al. 2018): the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3
over all samples and references; pairs of a resample that are the same
original sample are left out, as the unbiased estimator leaves out i = j.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_fidelity.metric_fid import fid_features_to_statistics


@dataclass(frozen=True)
class BootstrapResult:
    fid_se: float
    kid_se: float
    fid_replicates: list[float]
    kid_replicates: list[float]
    resamples: int
    seed: int


def _poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def _fid_of_resample(features: torch.Tensor, gram: torch.Tensor | None, root_r: torch.Tensor, index: torch.Tensor,
                     mu_r: torch.Tensor, trace_r: float) -> float:
    n = len(index)
    sub = features[index]
    mean = sub.mean(0)
    centred = sub - mean
    if gram is not None:
        # A S_r A^T = H (X S_r X^T)[I, I] H, H the centring matrix (X S_r X^T is precomputed as `gram`)
        g = gram[index][:, index]
        g = g - g.mean(0, keepdim=True) - g.mean(1, keepdim=True) + g.mean()
    else:
        g = root_r @ (centred.T @ centred) @ root_r  # S_r^(1/2) S S_r^(1/2) (n - 1), same nonzero spectrum
    eig = torch.linalg.eigvalsh(g / (n - 1)).clamp_min(0)
    trace_s = float((centred * centred).sum()) / (n - 1)
    return float(((mean - mu_r) ** 2).sum()) + trace_s + trace_r - 2.0 * float(eig.sqrt().sum())


def _kid_of_resample(k_xx: torch.Tensor, k_xy: torch.Tensor, kyy_term: float, index: torch.Tensor) -> float:
    same = index[:, None] == index[None, :]  # the same original sample twice: left out like i = j
    kxx = k_xx[index][:, index]
    xx = float(kxx[~same].mean())
    return xx + kyy_term - 2.0 * float(k_xy[index].mean())


def bootstrap(features: torch.Tensor, reference: torch.Tensor, resamples: int, seed: int = 0) -> BootstrapResult:
    """Standard errors of FID and KID (full-set unbiased estimate) under resampling of `features`."""
    x, y = features.double().cpu(), reference.double().cpu()
    mu_r, sigma_r = (torch.from_numpy(v) for v in fid_features_to_statistics(y).values())
    gram, root_r = _spectral_form(x, sigma_r)
    trace_r = float(torch.trace(sigma_r))
    k_yy = _poly_kernel(y, y)
    m = len(y)
    kyy_term = float((k_yy.sum() - torch.diagonal(k_yy).sum()) / (m * (m - 1)))
    k_xx, k_xy = _poly_kernel(x, x), _poly_kernel(x, y)
    gen = torch.Generator().manual_seed(seed)
    fids, kids = [], []
    for _ in range(resamples):
        index = torch.randint(len(x), (len(x),), generator=gen)
        fids.append(_fid_of_resample(x, gram, root_r, index, mu_r, trace_r))
        kids.append(_kid_of_resample(k_xx, k_xy, kyy_term, index))
    fid_t, kid_t = torch.tensor(fids), torch.tensor(kids)
    return BootstrapResult(float(fid_t.std()), float(kid_t.std()), fids, kids, resamples, seed)


def fid_via_gram(features: torch.Tensor, reference: torch.Tensor) -> float:
    """FID computed the way the bootstrap computes each replicate, on the full sample (for tests)."""
    x, y = features.double().cpu(), reference.double().cpu()
    mu_r, sigma_r = (torch.from_numpy(v) for v in fid_features_to_statistics(y).values())
    gram, root_r = _spectral_form(x, sigma_r)
    return _fid_of_resample(x, gram, root_r, torch.arange(len(x)), mu_r, float(torch.trace(sigma_r)))


def _spectral_form(x: torch.Tensor, sigma_r: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(X S_r X^T, unused) when n <= d, else (None, S_r^(1/2)): whichever makes the eigenproblem smaller."""
    if len(x) <= x.shape[1]:
        return x @ sigma_r @ x.T, sigma_r
    return None, _psd_sqrt(sigma_r)
