"""How each metric moves between two training budgets of the scaling study, paired by seed.

The summary table compares budgets through their seed means, so seed-to-seed variation enters twice and a
real trend between budgets can hide inside it. An arm of seed s at scale 2x continues seed s's networks from
the arm at 1x (same initialisation and data order), so the difference *within a seed* is the effect of the
extra training. Per pair of budgets and space: each shared seed's difference (larger budget minus smaller),
then the mean over those seeds with a 95% interval: the t-interval over seeds, never narrower than the
bootstrap noise of the mean difference (each seed's two cells' sample noise), so two seeds that agree by luck
do not resolve a difference their samples cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from lediflow.analysis.significance import resolved  # the summary's rule, not a second copy
from lediflow.analysis.tables import Z95, value_half

# the default run's scale: every larger budget is also compared with it directly, where it shares more seeds
# with it than with its neighbour (the latent x4 seeds pair with x1's, not with x2's single seed)
REFERENCE_SCALE = 1.0
STEP_METRICS = ("baseline_best_fid", "ledi_best_fid", "best_fid_gap", "best_ratio", "fid_ratio", "dopri5_ratio")


def _with_gap(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-row value and bootstrap se of every step metric (the ratios' se by the delta method)."""
    out = rows.copy()
    out["best_fid_gap"] = out["baseline_best_fid"] - out["ledi_best_fid"]
    out["best_fid_gap_se"] = np.sqrt(out["baseline_best_fid_se"] ** 2 + out["ledi_best_fid_se"] ** 2)
    for ratio in ("best_ratio", "fid_ratio", "dopri5_ratio"):
        out[f"{ratio}_se"] = out[ratio] * out[f"{ratio}_log_se"]
    return out


def budget_pairs(scales: list[float]) -> list[tuple[float, float]]:
    """Each budget against the next smaller one, and every budget above the reference against the reference."""
    scales = sorted(scales)
    pairs = list(zip(scales, scales[1:]))
    if REFERENCE_SCALE in scales:
        pairs += [(REFERENCE_SCALE, s) for s in scales if s > REFERENCE_SCALE and (REFERENCE_SCALE, s) not in pairs]
    return pairs


def paired_difference(low: pd.DataFrame, high: pd.DataFrame, metric: str) -> tuple[float, float]:
    """(mean over shared seeds of high - low, its 95% half-width); low and high are indexed by seed."""
    seeds = sorted(set(low.index) & set(high.index))
    diff = (high.loc[seeds, metric] - low.loc[seeds, metric]).to_numpy(float)
    noise = np.sqrt(high.loc[seeds, f"{metric}_se"].to_numpy(float) ** 2
                    + low.loc[seeds, f"{metric}_se"].to_numpy(float) ** 2)
    keep = ~np.isnan(diff)
    diff, noise = diff[keep], noise[keep]
    if len(diff) == 0:
        return math.nan, math.nan
    half = Z95 * math.sqrt(float((noise ** 2).sum())) / len(diff)  # sample noise of the mean difference
    if len(diff) >= 2:
        half = max(half, float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))))
    return float(diff.mean()), half


def steps(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, budget pair) sharing at least one seed: each metric's paired change and interval."""
    rows = _with_gap(rows)
    out = []
    for space, group in rows.groupby("space", sort=True):
        for low_scale, high_scale in budget_pairs(list(group["scale"].unique())):
            low = group[group["scale"] == low_scale].set_index("seed")
            high = group[group["scale"] == high_scale].set_index("seed")
            seeds = sorted(set(low.index) & set(high.index))
            if not seeds:
                continue
            row: dict = {"space": space, "from_scale": low_scale, "to_scale": high_scale,
                         "seeds": len(seeds), "paired_seeds": " ".join(str(s) for s in seeds)}
            for metric in STEP_METRICS:
                change, half = paired_difference(low, high, metric)
                row[f"{metric}_change"], row[f"{metric}_change_ci"] = change, half
                row[f"{metric}_change_resolved"] = resolved(change, half, 0.0)
            out.append(row)
    return pd.DataFrame(out)


def display(changes: pd.DataFrame, label: Callable[[float], str]) -> pd.DataFrame:
    """The Markdown/LaTeX table: change ± 95% per metric, '(not resolved)' where the interval holds 0."""
    def pm(row: pd.Series, metric: str, digits: int) -> str:
        value, half = row[f"{metric}_change"], row[f"{metric}_change_ci"]
        if math.isnan(value):
            return ""
        flag = "" if row[f"{metric}_change_resolved"] == "yes" else f" ({row[f'{metric}_change_resolved']})"
        return value_half(value, half, digits, signed=True) + flag

    shown = []
    for _, r in changes.iterrows():
        shown.append({"space": r["space"], "budgets": f"{label(r['from_scale'])} → {label(r['to_scale'])}",
                      "paired seeds": r["paired_seeds"],
                      "Δ baseline best FID": pm(r, "baseline_best_fid", 1),
                      "Δ LeDiFlow best FID": pm(r, "ledi_best_fid", 1),
                      "Δ best FID gap": pm(r, "best_fid_gap", 1),
                      "Δ best / best": pm(r, "best_ratio", 2),
                      "Δ FID ratio, equal NFE": pm(r, "fid_ratio", 2),
                      "Δ FID ratio, dopri5": pm(r, "dopri5_ratio", 2)})
    return pd.DataFrame(shown)  # plain space and budgets columns: row labels a reader can read


CAPTION = ("Scaling study, change between training budgets paired by seed: for each seed both budgets ran, the "
           "larger budget's value minus the smaller's (a larger arm continues its seed's networks from the "
           "smaller one), then the mean over those seeds ± 95%: the t-interval over seeds, never narrower than "
           "the bootstrap noise of the mean difference (one seed: that noise alone). Each budget is paired "
           "with the next smaller one and, above x1, with x1 (the default run). Metrics as in the scaling table; "
           "best FID gap = baseline best FID - LeDiFlow best FID; the equal-NFE ratio's one-seed noise is the "
           "bound over correlations between its step cells. 'not resolved': the interval holds 0 (per "
           "comparison).")
