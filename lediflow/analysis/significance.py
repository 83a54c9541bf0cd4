"""Intervals, p-values and family-wise control for summaries over seeds (t over seeds, bootstrap for one)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from lediflow.analysis.tables import Z95


def interval(values: np.ndarray, single_se: float) -> tuple[float, float, str]:
    """(centre, 95% half-width, how): seeds -> mean and t-interval of the mean; one seed -> its bootstrap."""
    values = values[~np.isnan(values)]
    if len(values) >= 2:
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        return float(values.mean()), float(half), f"{len(values)} seeds"
    if len(values) == 1:
        return float(values[0]), Z95 * single_se if not math.isnan(single_se) else math.nan, "1 seed, bootstrap"
    return math.nan, math.nan, "no value"


def p_value(values: np.ndarray, centre: float, half: float, null: float) -> float:
    """Two-sided p of 'centre = null' under the interval's own model: t over seeds, normal for one seed."""
    values = values[~np.isnan(values)]
    if math.isnan(centre) or math.isnan(half) or half == 0:
        return math.nan
    if len(values) >= 2:
        se = half / stats.t.ppf(0.975, len(values) - 1)
        return float(2 * stats.t.sf(abs(centre - null) / se, len(values) - 1))
    return float(2 * stats.norm.sf(abs(centre - null) / (half / Z95)))


def resolved(centre: float, half: float, null: float) -> str:
    """'yes' when the 95% interval excludes the null, 'not resolved' when it does not, 'n/a' without one."""
    if math.isnan(centre) or math.isnan(half):
        return "n/a"
    return "yes" if abs(centre - null) > half else "not resolved"


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down: which of the hypotheses are rejected with the family-wise error held at alpha."""
    order = sorted((p, i) for i, p in enumerate(p_values))
    rejected = [False] * len(p_values)
    for rank, (p, i) in enumerate(order):
        if p > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected
