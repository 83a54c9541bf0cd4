"""The comparisons behind the headline: speedup at matched quality, ratios at equal NFE and at equal cost.

Definitions (PAPER.md 3), restated in every table's caption (stages/report.py):

- Matched quality. The target is the Gaussian baseline's best FID over the
  fixed grid of one solver. Two FIDs are "within tolerance" when they differ
  by less than the 95% half-width of their difference, Z95 sqrt(se_a^2 +
  se_b^2), se the bootstrap standard error of each cell. NFE_b is the
  smallest baseline NFE within tolerance of the target (where the baseline
  plateaus): two plateau cells that swap places inside their noise cannot
  move it.
- Achievable speedup = NFE_b / NFE_l, NFE_l the first LeDiFlow grid point
  within tolerance of the target (or below it): step counts a solver can run.
  Interpolated speedup: NFE_l where LeDiFlow's curve crosses the target,
  linear in log NFE between grid points (no solver runs there).
- Bounds. LeDiFlow already at the target at its first grid point: NFE_l <= that
  point, speedup ">=". The baseline's plateau at its last grid point: NFE_b
  ">=" and speedup ">=" (the baseline was still improving, so the target may
  also be too lenient: the note says so). LeDiFlow never within tolerance:
  speedup "<=" NFE_b over its last NFE.
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lediflow.paths import FIXED_GRID_SOLVERS
from lediflow.tables import METRICS, PAPER_HEADLINES, Z95, plus_minus


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


def speedup(scores: pd.DataFrame) -> pd.DataFrame:
    """Per space and fixed-grid solver: achievable and interpolated speedup at matched FID, with bounds."""
    rows = []
    for space, solver, base, learned in _fixed_pairs(scores):
        b_nfe, b_fid, b_se, b_ms = _arrays(base)
        l_nfe, l_fid, l_se, l_ms = _arrays(learned)
        target = matched_target(b_nfe, b_fid, b_se)
        ms_b = float(b_ms[target.index_b])
        row = {"space": space, "solver": solver, "target_fid": target.fid,
               "target_fid_ci": Z95 * float(b_se[np.argmin(b_fid)]),
               "baseline_nfe": target.nfe_b, "baseline_nfe_bound": ">=" if target.at_grid_end else "=",
               "baseline_ms_per_image": ms_b}
        reach = first_grid_point_reaching(l_fid, l_se, target)
        if reach is None:
            row.update({"ledi_nfe": math.nan, "ledi_ms_per_image": math.nan,
                        "speedup_nfe": target.nfe_b / l_nfe[-1], "speedup_wall_clock": ms_b / l_ms[-1],
                        "speedup_bound": "<="})
        else:
            row.update({"ledi_nfe": l_nfe[reach], "ledi_ms_per_image": l_ms[reach],
                        "speedup_nfe": target.nfe_b / l_nfe[reach], "speedup_wall_clock": ms_b / l_ms[reach],
                        # at the grid's edge on either side: the true speedup for this target may be larger
                        "speedup_bound": ">=" if reach == 0 or target.at_grid_end else "="})
        crossing = first_nfe_reaching(l_nfe, l_fid, target.fid)
        if crossing is None:
            row.update({"ledi_nfe_interp": math.nan, "speedup_nfe_interp": math.nan,
                        "speedup_wall_clock_interp": math.nan})
        else:
            row.update({"ledi_nfe_interp": crossing, "speedup_nfe_interp": target.nfe_b / crossing,
                        "speedup_wall_clock_interp": ms_b / _log_interp(crossing, l_nfe, l_ms)})
        notes = []
        if target.at_grid_end:
            notes.append("baseline still improving at its last grid point")
        if reach == 0:
            notes.append("LeDiFlow within tolerance at its first grid point")
        if reach is None:
            notes.append(f"LeDiFlow never within tolerance of FID {target.fid:.2f} on this grid")
        row["note"] = "; ".join(notes)
        rows.append(row)
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
        rows.append({"space": space, "solver": solver, "steps": "geomean", "nfe": math.nan,
                     **{m: _geomean(frame[m]) for m in METRICS}, "fid_ci": math.nan, "kid_ci": math.nan,
                     "fid_resolved": "n/a" if (frame["fid_resolved"] == "n/a").all()
                     else f"{(frame['fid_resolved'] == 'yes').sum()} of {len(frame)} cells"})
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
        cells = []
        for _, lrn in learned.iterrows():
            ms = float(lrn["ms_per_image"])
            inside = b_ms.min() <= ms <= b_ms.max()
            fid_b = _log_interp(ms, b_ms, b_fid) if inside else math.nan
            cells.append({"space": space, "solver": solver, "steps": f"{int(lrn['steps'])}", "ledi_nfe": lrn["nfe"],
                          "ledi_ms_per_image": ms, "ledi_fid": lrn["fid"], "baseline_fid_at_cost": fid_b,
                          "fid_ratio": fid_b / lrn["fid"],
                          "note": "" if inside else "outside the baseline's measured cost range"})
        rows += cells
        frame = pd.DataFrame(cells)
        rows.append({"space": space, "solver": solver, "steps": "geomean", "ledi_nfe": math.nan,
                     "ledi_ms_per_image": math.nan, "ledi_fid": math.nan, "baseline_fid_at_cost": math.nan,
                     "fid_ratio": _geomean(frame["fid_ratio"]),
                     "note": f"over {int(frame['fid_ratio'].notna().sum())} of {len(frame)} cells"})
    return pd.DataFrame(rows)


def _speedup_text(row: pd.Series) -> str:
    bound = "" if row["speedup_bound"] == "=" else f"{row['speedup_bound']} "
    interp = "" if math.isnan(row["speedup_nfe_interp"]) else f", {row['speedup_nfe_interp']:.1f}x interpolated"
    return (f"{row['solver']}: {bound}{row['speedup_nfe']:.1f}x fewer NFE on the grid ({row['baseline_nfe']:g} vs "
            f"{row['ledi_nfe']:g}{interp}), {bound}{row['speedup_wall_clock']:.1f}x wall-clock")


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
        parts = [f"{r['solver']} FID {r['fid']:.2f}x / KID {r['kid_mean']:.2f}x" for _, r in means.iterrows()]
        costs = cost[(cost["space"] == "latent") & (cost["steps"] == "geomean")]
        parts += [f"{r['solver']} at equal cost FID {r['fid_ratio']:.2f}x" for _, r in costs.iterrows()]
        accurate = latent[latent["solver"] == "dopri5"]
        parts += [f"dopri5 ({r['steps']}) FID {plus_minus(r['fid'], r['fid_ci'] / Z95, 2)}x"
                  for _, r in accurate.iterrows()]
        cmmd = "" if means["cmmd"].notna().any() else "; CMMD unavailable (no CLIP weights)"
        ours = "geometric mean baseline/LeDiFlow at equal NFE: " + ", ".join(parts) + cmmd
    rows.append({"space": "latent", "paper": PAPER_HEADLINES["latent"], "this run": ours})
    return pd.DataFrame(rows)
