"""Kernel statistics: the CMMD estimator (Jayasumana et al., CVPR 2024) and KID from features."""

from __future__ import annotations

import torch
from torch_fidelity.metric_kid import kid_features_to_metric

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def rbf_mmd2_biased(x: torch.Tensor, y: torch.Tensor, sigma: float = CMMD_SIGMA) -> float:
    """Biased MMD^2 with k(a, b) = exp(-||a - b||^2 / (2 sigma^2)), diagonal terms included (float64)."""
    x, y = x.double(), y.double()
    gamma = 1.0 / (2 * sigma**2)
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    k_xx = torch.exp(-gamma * (xx[:, None] + xx[None, :] - 2 * x @ x.T)).mean()
    k_yy = torch.exp(-gamma * (yy[:, None] + yy[None, :] - 2 * y @ y.T)).mean()
    k_xy = torch.exp(-gamma * (xx[:, None] + yy[None, :] - 2 * x @ y.T)).mean()
    return float(k_xx + k_yy - 2 * k_xy)


def cmmd_from_embeddings(x: torch.Tensor, y: torch.Tensor) -> float:
    """CMMD = 1000 * biased MMD^2 (RBF, sigma=10) of L2-normalised embeddings."""
    x = torch.nn.functional.normalize(x.double(), dim=1)
    y = torch.nn.functional.normalize(y.double(), dim=1)
    return CMMD_SCALE * rbf_mmd2_biased(x, y)


def kid_from_features(a: torch.Tensor, b: torch.Tensor, subset_size: int, subsets: int, seed: int = 2020
                      ) -> dict[str, float]:
    """KID (unbiased MMD^2, cubic polynomial kernel; torch-fidelity's code); subset size capped by the counts."""
    size = min(subset_size, len(a), len(b))
    out = kid_features_to_metric(a.double().cpu(), b.double().cpu(), kid_subset_size=size, kid_subsets=subsets,
                                 kid_kernel="poly", kid_kernel_poly_degree=3,
                                 kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False)
    return {"kid_mean": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"],
            "kid_subset_size": size, "kid_subsets": subsets}

