"""Improved precision and recall (Kynkaanniemi et al. 2019) on Inception pool features.

Each set's manifold is the union of balls around its points, each of radius
the distance to its k-th nearest neighbour in the same set (k = 3, the
paper's choice). Precision: the share of generated samples inside the real
manifold (fidelity); recall: the share of real images inside the generated
manifold (diversity). FID mixes the two; these tell them apart, so a prior
that buys fidelity with diversity shows it. torch-fidelity's implementation
is used as is; the features are the ones the scorer already extracted.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_prc import calculate_precision_recall_full

NEIGHBOURHOOD = 3  # k of the k-NN radius (Kynkaanniemi et al. 2019, sec. 3)


def precision_recall(generated: torch.Tensor, real: torch.Tensor, k: int = NEIGHBOURHOOD) -> dict:
    """{'precision', 'recall', 'prc_k'} of `generated` against `real` (rows: feature vectors); None for both
    where a set has no k-th neighbour (k + 1 points or fewer: the radius is undefined)."""
    if min(len(generated), len(real)) <= k:
        return {"precision": None, "recall": None, "prc_k": k}
    precision, recall = calculate_precision_recall_full(generated.float().cpu(), real.float().cpu(), k)
    return {"precision": float(precision), "recall": float(recall), "prc_k": k}
