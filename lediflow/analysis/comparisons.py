"""The comparisons behind the headline: speedup at matched quality, ratios at equal NFE and at equal cost.

Definitions (docs/method.md 3), restated in every table's caption (stages/report.py):

- Matched quality. The target is the Gaussian baseline's best FID over the
  fixed grid of one solver. Two FIDs are "within tolerance" when they differ
  by less than the 95% half-width of their difference, Z95 sqrt(se_a^2 +
  se_b^2), se the bootstrap standard error of each cell. NFE_b is the
  smallest baseline NFE within tolerance of the target (where the baseline
  plateaus): two plateau cells that swap places inside their noise cannot
  move it.
- Matched speedup = NFE_b / NFE_l, NFE_l where LeDiFlow's curve first reaches
  the target, linear in log NFE between grid points (as the ms/image at
  NFE_l). It is a bound only where the grid bounds it: ">=" when LeDiFlow's
  first grid point is already at or below the target (NFE_l <= that point)
  or the baseline still improves at its last grid point; "<=" when LeDiFlow
  never reaches the target (NFE_b over its last NFE). A first grid point
  within tolerance but above the target is interpolated, not a bound.
- Grid speedup = NFE_b / the first LeDiFlow grid point within tolerance of
  the target: the step counts a solver can run.
- Sensitivity: the same matched speedup at targets 5% and 10% above the
  baseline's best, with NFE_b interpolated too, so a baseline plateau cell
  that flips in or out of tolerance shows how far it moves the number.
- Inverse speedup: the baseline NFE (interpolated on log NFE) needed to reach
  LeDiFlow's FID at 1, 2 and 4 steps, over those steps; "not reached" when the
  baseline's grid never gets there (then it is at least its last NFE over
  LeDiFlow's), "<=" when the baseline's first grid point already does.
- Best against best: the baseline's best FID over all its solver cells over
  LeDiFlow's: each flow given its best solver.
- Ratio at equal NFE: baseline metric / LeDiFlow metric per (solver, steps);
  > 1 favours LeDiFlow; summarised by the geometric mean over the step grid.
- Ratio at equal cost: for each LeDiFlow cell, its measured ms/image (latent
  sampler, prior decoder and autoencoder decode included) is located on the
  baseline's FID-vs-ms curve of the same solver (linear in log ms); ratio =
  that interpolated baseline FID / LeDiFlow's FID. Undefined where LeDiFlow's
  cost lies outside the baseline's measured range.
- dopri5 (accurate solve): its ratio answers another question (a better flow
  or only an easier one to integrate), so it has its own rows, never in a mean.
- Uncertainty of a ratio r = a / b: delta method, r sqrt((se_a/a)^2 + (se_b/b)^2),
  95% half-width Z95 times that. A difference inside its tolerance is "not resolved".
- Uncertainty of a geometric mean over step cells: the cells share the initial
  noise of every image and the reference, so they are not independent. Where
  the score files hold the bootstrap replicates (drawn with the same resample
  indices in every cell of a run) the mean of log ratios is bootstrapped
  jointly; otherwise its standard error is bounded by the mean of the cells'
  log-ratio errors, which holds for any correlation between cells (Minkowski).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lediflow.method.names import FIXED_GRID_SOLVERS
from lediflow.analysis.tables import METRICS, PAPER_HEADLINES, Z95, plus_minus


def _se(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


def tolerance(se_a: float, se_b: float) -> float:
    """95% half-width of the difference of two independent estimates."""
    return Z95 * math.hypot(_se(se_a), _se(se_b))


@dataclass(frozen=True)
class Target:
    fid: float
    se: float
    nfe_b: float  # smallest baseline NFE within tolerance of the best
    index_b: int
    at_grid_end: bool  # the plateau starts at the last grid point: the baseline may still improve


def matched_target(nfe: np.ndarray, fid: np.ndarray, se: np.ndarray) -> Target:
    """The baseline's best FID and the first grid point statistically indistinguishable from it (nfe sorted)."""
    best = int(np.argmin(fid))
    within = [i for i in range(len(fid)) if fid[i] <= fid[best] + tolerance(se[i], se[best])]
    index_b = within[0]
    return Target(float(fid[best]), _se(se[best]), float(nfe[index_b]), index_b, index_b == len(fid) - 1)


def first_grid_point_reaching(fid: np.ndarray, se: np.ndarray, target: Target) -> int | None:
    """Index of the first LeDiFlow grid point at or within tolerance of the target; None if none (nfe sorted)."""
    for i in range(len(fid)):
        if fid[i] <= target.fid + tolerance(se[i], target.se):
            return i
    return None


def first_nfe_reaching(nfe: np.ndarray, fid: np.ndarray, target: float) -> float | None:
    """Smallest NFE where the curve reaches FID <= target, interpolated on log NFE; None if never."""
    order = np.argsort(nfe)
    nfe, fid = nfe[order], fid[order]
    if fid[0] <= target:
        return float(nfe[0])
    for i in range(1, len(nfe)):
        if fid[i] <= target:
            # fid falls from fid[i-1] > target to fid[i] <= target between these grid points
            frac = (fid[i - 1] - target) / (fid[i - 1] - fid[i])
            return float(math.exp(math.log(nfe[i - 1]) + frac * (math.log(nfe[i]) - math.log(nfe[i - 1]))))
    return None


def _log_interp(x_target: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Linear interpolation of y at x_target on log x."""
    return float(np.interp(math.log(x_target), np.log(xs), ys))


def _arrays(curve: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (curve["nfe"].to_numpy(float), curve["fid"].to_numpy(float), curve["fid_se"].to_numpy(float),
            curve["ms_per_image"].to_numpy(float))


def _fixed_pairs(scores: pd.DataFrame):
    """Per space and fixed-grid solver: both arms' curves (zero-step prior cells and dopri5 are not on a grid)."""
    fixed = scores[scores["solver"].isin(FIXED_GRID_SOLVERS)]
    for (space, solver), group in fixed.groupby(["space", "solver"]):
        base = group[group["prior"] == "gaussian"].sort_values("nfe")
        learned = group[group["prior"] == "learned"].sort_values("nfe")
        if not base.empty and not learned.empty:
            yield space, solver, base, learned


BAND = (0.05, 0.10)  # relative slack of the sensitivity targets above the baseline's best FID


def _interp_at(nfe: np.ndarray, values: np.ndarray, at: float) -> float:
    """values at NFE `at`, linear in log NFE (at lies on the grid's span)."""
    return _log_interp(at, nfe, values)


def _matched(b_nfe: np.ndarray, b_ms: np.ndarray, l_nfe: np.ndarray, l_fid: np.ndarray, l_ms: np.ndarray,
             target: float, nfe_b: float, ms_b: float, baseline_open: bool) -> dict:
    """Speedup to `target` with LeDiFlow's NFE interpolated on log NFE and the bound the grid puts on it."""
    crossing = first_nfe_reaching(l_nfe, l_fid, target)
    if crossing is None:  # LeDiFlow never reaches the target: at most NFE_b over its last NFE
        return {"ledi_nfe": math.nan, "ledi_ms_per_image": math.nan, "speedup_nfe": nfe_b / l_nfe[-1],
                "speedup_wall_clock": ms_b / l_ms[-1], "speedup_bound": "<="}
    first_point = bool(l_fid[0] <= target)  # already there at the first grid point: NFE_l <= l_nfe[0]
    ms_l = _interp_at(l_nfe, l_ms, crossing)
    return {"ledi_nfe": crossing, "ledi_ms_per_image": ms_l, "speedup_nfe": nfe_b / crossing,
            "speedup_wall_clock": ms_b / ms_l, "speedup_bound": ">=" if first_point or baseline_open else "="}


def speedup(scores: pd.DataFrame) -> pd.DataFrame:
    """Per space and fixed-grid solver: matched, grid and sensitivity speedups at matched FID, with bounds."""
    rows = []
    for space, solver, base, learned in _fixed_pairs(scores):
        b_nfe, b_fid, b_se, b_ms = _arrays(base)
        l_nfe, l_fid, l_se, l_ms = _arrays(learned)
        target = matched_target(b_nfe, b_fid, b_se)
        ms_b = float(b_ms[target.index_b])
        row = {"space": space, "solver": solver, "target_fid": target.fid,
               "target_fid_ci": Z95 * float(b_se[np.argmin(b_fid)]),
               "baseline_nfe": target.nfe_b, "baseline_nfe_bound": ">=" if target.at_grid_end else "=",
               "baseline_ms_per_image": ms_b,
               **_matched(b_nfe, b_ms, l_nfe, l_fid, l_ms, target.fid, target.nfe_b, ms_b, target.at_grid_end)}
        reach = first_grid_point_reaching(l_fid, l_se, target)
        row["ledi_nfe_grid"] = math.nan if reach is None else float(l_nfe[reach])
        row["speedup_nfe_grid"] = math.nan if reach is None else target.nfe_b / float(l_nfe[reach])
        for slack in BAND:
            level = target.fid * (1.0 + slack)
            nfe_b = first_nfe_reaching(b_nfe, b_fid, level)  # never None: the level lies above the best
            band = _matched(b_nfe, b_ms, l_nfe, l_fid, l_ms, level, nfe_b, _interp_at(b_nfe, b_ms, nfe_b), False)
            row[f"speedup_nfe_plus{round(slack * 100)}pct"] = band["speedup_nfe"]
            row[f"speedup_bound_plus{round(slack * 100)}pct"] = band["speedup_bound"]
        notes = []
        if target.at_grid_end:
            notes.append("baseline still improving at its last grid point")
        if row["speedup_bound"] == ">=" and l_fid[0] <= target.fid:
            notes.append("LeDiFlow at or below the target at its first grid point")
        if row["speedup_bound"] == "<=":
            notes.append(f"LeDiFlow never reaches FID {target.fid:.2f} on this grid")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


INVERSE_STEPS = (1, 2, 4)  # LeDiFlow's few-step cells whose FID the baseline is asked to reach


def inverse_speedup(scores: pd.DataFrame) -> pd.DataFrame:
    """Per space and fixed-grid solver and LeDiFlow step count: the baseline NFE needed for LeDiFlow's FID."""
    rows = []
    for space, solver, base, learned in _fixed_pairs(scores):
        b_nfe, b_fid, _, _ = _arrays(base)
        for _, cell in learned[learned["steps"].isin(INVERSE_STEPS)].iterrows():
            fid, nfe = float(cell["fid"]), float(cell["nfe"])
            needed = first_nfe_reaching(b_nfe, b_fid, fid)
            if needed is None:  # the baseline's grid never gets there: at least its last NFE
                value, bound, note = b_nfe.max() / nfe, ">", f"not reached (baseline best {b_fid.min():.2f})"
            else:
                value, bound, note = needed / nfe, "<=" if b_fid[0] <= fid else "=", ""
            rows.append({"space": space, "solver": solver, "steps": int(cell["steps"]), "ledi_nfe": nfe,
                         "ledi_fid": fid, "baseline_nfe": math.nan if needed is None else needed,
                         "inverse_speedup": value, "bound": bound, "note": note})
    return pd.DataFrame(rows)


def _ratio(a: float, se_a: float, b: float, se_b: float) -> tuple[float, float]:
    """(a / b, 95% half-width) by the delta method; the half-width is NaN where a cell has no error bar."""
    r = a / b
    return r, Z95 * abs(r) * math.hypot(se_a / a, se_b / b)


def _resolved(base: pd.Series, learned: pd.Series) -> str:
    """'yes' / 'no' (the FID difference inside its 95% interval) / 'n/a' (cells without error bars)."""
    if math.isnan(base["fid_se"]) or math.isnan(learned["fid_se"]):
        return "n/a"
    return "yes" if abs(base["fid"] - learned["fid"]) > tolerance(base["fid_se"], learned["fid_se"]) else "no"


def _ratio_row(base: pd.Series, learned: pd.Series) -> dict:
    fid, fid_ci = _ratio(base["fid"], base["fid_se"], learned["fid"], learned["fid_se"])
    kid, kid_ci = _ratio(base["kid_mean"], base["kid_se"], learned["kid_mean"], learned["kid_se"])
    return {"fid": fid, "fid_ci": fid_ci, "kid_mean": kid, "kid_ci": kid_ci,
            "cmmd": base["cmmd"] / learned["cmmd"], "mmd_inception": base["mmd_inception"] / learned["mmd_inception"],
            "fid_resolved": _resolved(base, learned)}


def _geomean(values: pd.Series) -> float:
    values = values.dropna()
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


def _replicates(cells: pd.DataFrame, metric: str) -> np.ndarray | None:
    """(cells x B) bootstrap replicates of `metric`, or None where any cell's score file holds none."""
    column = f"{metric}_replicates"
    if column not in cells or any(not isinstance(r, (list, np.ndarray)) for r in cells[column]):
        return None
    reps = [np.asarray(r, dtype=float) for r in cells[column]]
    return np.stack(reps) if len({len(r) for r in reps}) == 1 and len(reps[0]) > 1 else None


def geomean_log_se(base: pd.DataFrame, learned: pd.DataFrame, metric: str = "fid",
                   se: str = "fid_se") -> tuple[float, str]:
    """Standard error of the mean over cells of log(base / learned), rows aligned, and how it was had.

    Joint bootstrap where both sides hold replicates (one resample index set per run, so replicate j of every
    cell is the same resample); else the mean of the cells' log-ratio errors, an upper bound for any
    correlation between cells (sd of a sum <= sum of sds).
    """
    b_reps, l_reps = _replicates(base, metric), _replicates(learned, metric)
    if b_reps is not None and l_reps is not None and b_reps.shape == l_reps.shape:
        return float(np.log(b_reps / l_reps).mean(axis=0).std(ddof=1)), "joint bootstrap"
    cell_se = np.hypot(base[se].to_numpy(float) / base[metric].to_numpy(float),
                       learned[se].to_numpy(float) / learned[metric].to_numpy(float))
    return float(np.mean(cell_se)), "bound over correlations"


def quality_ratio(scores: pd.DataFrame) -> pd.DataFrame:
    """baseline / LeDiFlow at equal NFE per fixed-grid cell, a geometric-mean row per solver, dopri5 on its own."""
    rows = []
    for space, solver, base, learned in _fixed_pairs(scores):
        cells = []
        for steps in sorted(set(base["steps"]) & set(learned["steps"])):
            b, lrn = base[base["steps"] == steps].iloc[0], learned[learned["steps"] == steps].iloc[0]
            cells.append({"space": space, "solver": solver, "steps": f"{int(steps)}", "nfe": b["nfe"],
                          **_ratio_row(b, lrn)})
        rows += cells
        frame = pd.DataFrame(cells)
        shared = sorted(set(base["steps"]) & set(learned["steps"]))
        b_cells = base.set_index("steps").loc[shared].reset_index()
        l_cells = learned.set_index("steps").loc[shared].reset_index()
        means = {m: _geomean(frame[m]) for m in METRICS}
        fid_log_se, how = geomean_log_se(b_cells, l_cells)
        kid_log_se, _ = geomean_log_se(b_cells, l_cells, "kid_mean", "kid_se")
        rows.append({"space": space, "solver": solver, "steps": "geomean", "nfe": math.nan, **means,
                     "fid_ci": Z95 * means["fid"] * fid_log_se, "kid_ci": Z95 * means["kid_mean"] * kid_log_se,
                     "fid_resolved": "n/a" if (frame["fid_resolved"] == "n/a").all()
                     else f"{(frame['fid_resolved'] == 'yes').sum()} of {len(frame)} cells; ci: {how}"})
    adaptive = scores[scores["solver"] == "dopri5"]
    for (space, tol), group in adaptive.groupby(["space", "tol"]):
        base, learned = group[group["prior"] == "gaussian"], group[group["prior"] == "learned"]
        if not base.empty and not learned.empty:
            b, lrn = base.iloc[0], learned.iloc[0]
            rows.append({"space": space, "solver": "dopri5", "steps": f"tol {tol:g}",
                         "nfe": f"{b['nfe']:.0f} / {lrn['nfe']:.0f}", **_ratio_row(b, lrn)})
    return pd.DataFrame(rows)


def cost_ratio(scores: pd.DataFrame) -> pd.DataFrame:
    """baseline FID at LeDiFlow's measured cost (log-ms interpolation) / LeDiFlow FID, per LeDiFlow cell."""
    rows = []
    for space, solver, base, learned in _fixed_pairs(scores):
        base = base.sort_values("ms_per_image")
        b_ms, b_fid = base["ms_per_image"].to_numpy(float), base["fid"].to_numpy(float)
        b_se = base["fid_se"].to_numpy(float)
        cells = []
        for _, lrn in learned.iterrows():
            ms = float(lrn["ms_per_image"])
            inside = b_ms.min() <= ms <= b_ms.max()
            fid_b = _log_interp(ms, b_ms, b_fid) if inside else math.nan
            # the interpolated FID's se: the same weights on the neighbours' se, a bound for any correlation
            se_b = _log_interp(ms, b_ms, b_se) if inside else math.nan
            ratio = fid_b / lrn["fid"]
            log_se = math.hypot(se_b / fid_b, _se(lrn["fid_se"]) / lrn["fid"]) if inside else math.nan
            cells.append({"space": space, "solver": solver, "steps": f"{int(lrn['steps'])}", "ledi_nfe": lrn["nfe"],
                          "ledi_ms_per_image": ms, "ledi_fid": lrn["fid"], "baseline_fid_at_cost": fid_b,
                          "fid_ratio": ratio, "fid_ratio_ci": Z95 * ratio * log_se,
                          "note": "" if inside else "outside the baseline's measured cost range"})
        rows += cells
        frame = pd.DataFrame(cells)
        mean = _geomean(frame["fid_ratio"])
        defined = frame["fid_ratio"].notna()
        log_se = float((frame.loc[defined, "fid_ratio_ci"] / frame.loc[defined, "fid_ratio"]).mean()) / Z95
        rows.append({"space": space, "solver": solver, "steps": "geomean", "ledi_nfe": math.nan,
                     "ledi_ms_per_image": math.nan, "ledi_fid": math.nan, "baseline_fid_at_cost": math.nan,
                     "fid_ratio": mean, "fid_ratio_ci": Z95 * mean * log_se if defined.any() else math.nan,
                     "note": f"over {int(defined.sum())} of {len(frame)} cells"})
    return pd.DataFrame(rows)


def _speedup_text(row: pd.Series) -> str:
    bound = "" if row["speedup_bound"] == "=" else f"{row['speedup_bound']} "
    how = "interpolated" if row["speedup_bound"] == "=" else "bounded by the grid"
    ledi = "its last" if math.isnan(row["ledi_nfe"]) else f"{row['ledi_nfe']:.3g}"
    return (f"{row['solver']}: {bound}{row['speedup_nfe']:.1f}x fewer NFE at matched FID ({row['baseline_nfe']:g} vs "
            f"{ledi}, {how}), {bound}{row['speedup_wall_clock']:.1f}x wall-clock")


def headline(speed: pd.DataFrame, ratio: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    rows = []
    pixel = speed[speed["space"] == "pixel"] if not speed.empty else speed
    parts = [_speedup_text(row) for _, row in pixel.iterrows() if not math.isnan(row["speedup_nfe"])]
    rows.append({"space": "pixel", "paper": PAPER_HEADLINES["pixel"],
                 "this run": "; ".join(parts) if parts else "not measured (no pixel-space pair of curves)"})
    latent = ratio[ratio["space"] == "latent"] if not ratio.empty else ratio
    if latent.empty:
        ours = "not measured (no latent-space run)"
    else:
        means = latent[latent["steps"] == "geomean"]
        parts = [f"{r['solver']} FID {plus_minus(r['fid'], r['fid_ci'] / Z95, 2)}x / KID {r['kid_mean']:.2f}x"
                 for _, r in means.iterrows()]
        costs = cost[(cost["space"] == "latent") & (cost["steps"] == "geomean")]
        parts += [f"{r['solver']} at equal cost FID {plus_minus(r['fid_ratio'], r['fid_ratio_ci'] / Z95, 2)}x"
                  for _, r in costs.iterrows()]
        accurate = latent[latent["solver"] == "dopri5"]
        parts += [f"dopri5 ({r['steps']}) FID {plus_minus(r['fid'], r['fid_ci'] / Z95, 2)}x"
                  for _, r in accurate.iterrows()]
        cmmd = "" if means["cmmd"].notna().any() else "; CMMD unavailable (no CLIP weights)"
        ours = "geometric mean baseline/LeDiFlow at equal NFE: " + ", ".join(parts) + cmmd
    rows.append({"space": "latent", "paper": PAPER_HEADLINES["latent"], "this run": ours})
    return pd.DataFrame(rows)
