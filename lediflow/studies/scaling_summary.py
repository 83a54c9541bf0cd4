"""The scaling study's summary: per run and space both flows' best FID, the speedups and ratios of
lediflow.analysis.comparisons and the measured training compute; per (space, scale) those over seeds (each
seed's ratios first, then mean and t-interval; an arm with one seed keeps its bootstrap interval over samples),
and the tables and figures of results/scaling.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lediflow.analysis import comparisons, tables
from lediflow.analysis.significance import holm, interval, p_value, resolved
from lediflow.analysis.tables import Z95
from lediflow.pipeline import paths
from lediflow.core.errors import LediflowError
from lediflow.pipeline.config import load_params
from lediflow.studies.scaling import (BANDS, BASELINE_MODELS, BOUNDED, LEDI_MODELS, METRICS, RATIOS, STEP_RATIOS,
                                      scale_label)


# --- per run ------------------------------------------------------------------------------------------------

def training_compute(run: Path, space: str) -> dict:
    """Measured training seconds of each pipeline of the space and the flows' images seen (NaN if unrecorded)."""
    def total(models: list[str], key: str) -> float:
        values = [tables.training_record(run, m).get(key, math.nan) for m in models]
        return float(sum(values)) if values else math.nan

    models = LEDI_MODELS[space] + BASELINE_MODELS[space]
    devices = {str(tables.training_record(run, m).get("device", "")) for m in models} - {""}
    return {"hardware": " / ".join(sorted(devices)) or "not recorded",
            "ledi_train_seconds": total(LEDI_MODELS[space], "train_seconds"),
            "baseline_train_seconds": total(BASELINE_MODELS[space], "train_seconds"),
            "ledi_flow_images": total([f"flow-{space}-learned"], "samples_seen"),
            "baseline_flow_images": total([f"flow-{space}-gaussian"], "samples_seen")}


def _best(curve: pd.DataFrame) -> tuple[float, float, str]:
    row = tables.best_solver_cell(curve)
    if row is None:
        return math.nan, math.nan, ""
    return float(row["fid"]), float(row["fid_se"]), str(row["setting"])


def _euler_ratio(scores: pd.DataFrame) -> tuple[float, float]:
    """Geometric mean over Euler steps of baseline FID / LeDiFlow FID at equal NFE, and the se of its log (joint
    bootstrap where the score files hold replicates, else the bound over correlations: comparisons.geomean_log_se)."""
    ratio = comparisons.quality_ratio(scores)
    mean = ratio[(ratio["solver"] == "euler") & (ratio["steps"] == "geomean")]
    if mean.empty:
        return math.nan, math.nan
    fid, ci = float(mean["fid"].iloc[0]), float(mean["fid_ci"].iloc[0])
    return fid, (ci / Z95) / fid


def _step_ratios(scores: pd.DataFrame) -> dict:
    """Baseline / LeDiFlow FID at each Euler step count of STEP_RATIOS, with the se of its log (delta method)."""
    ratio = comparisons.quality_ratio(scores)
    cells = ratio[ratio["solver"] == "euler"].set_index("steps")
    out = {}
    for steps in STEP_RATIOS:
        present = str(steps) in cells.index
        fid = float(cells.loc[str(steps), "fid"]) if present else math.nan
        out[f"ratio_e{steps}"] = fid
        out[f"ratio_e{steps}_log_se"] = float(cells.loc[str(steps), "fid_ci"]) / Z95 / fid if present else math.nan
    return out


def _cost_ratio(scores: pd.DataFrame) -> tuple[float, float]:
    """Geometric mean over LeDiFlow's Euler cells of the FID ratio at equal measured ms/image, se of its log."""
    cost = comparisons.cost_ratio(scores)
    mean = cost[(cost["solver"] == "euler") & (cost["steps"] == "geomean")]
    if mean.empty or math.isnan(float(mean["fid_ratio"].iloc[0])):
        return math.nan, math.nan
    fid, ci = float(mean["fid_ratio"].iloc[0]), float(mean["fid_ratio_ci"].iloc[0])
    return fid, (ci / Z95) / fid


def _inverse(scores: pd.DataFrame) -> dict:
    """The Euler baseline NFE for LeDiFlow's 1-, 2- and 4-step FID over LeDiFlow's NFE, and its bound."""
    inverse = comparisons.inverse_speedup(scores)
    cells = inverse[inverse["solver"] == "euler"].set_index("steps") if not inverse.empty else inverse
    out = {}
    for steps in comparisons.INVERSE_STEPS:
        present = not cells.empty and steps in cells.index
        out[f"inverse_e{steps}"] = float(cells.loc[steps, "inverse_speedup"]) if present else math.nan
        out[f"inverse_e{steps}_bound"] = str(cells.loc[steps, "bound"]) if present else ""
    return out


def _dopri5_ratio(scores: pd.DataFrame) -> tuple[float, float]:
    """Baseline FID / LeDiFlow FID with both flows solved by dopri5 (the tightest tolerance both have), and the se
    of its log: how the effect looks when neither side saves on the solver."""
    adaptive = scores[scores["solver"] == "dopri5"]
    priors = adaptive.groupby("tol")["prior"].nunique()
    shared = priors[priors == 2].index
    if len(shared) == 0:
        return math.nan, math.nan
    kept = scores[(scores["solver"] != "dopri5") | (scores["tol"] == min(shared))]
    cell = comparisons.quality_ratio(kept).query("solver == 'dopri5'").iloc[0]
    fid, ci = float(cell["fid"]), float(cell["fid_ci"])
    return fid, (ci / Z95) / fid  # delta method, as the Euler ratio


def _space(cell: tuple[str, str]) -> str:
    return paths.parse_flow_name(cell[0])[0]


def run_rows(run: Path, cells: list[tuple[str, str]]) -> list[dict]:
    """One row per space of the run: its scale, seed, compute, both best FIDs, speedups and FID ratio."""
    params = load_params([run / "params.yaml"])
    # a split-space arm trains one space: it is scored on the common cells of that space only
    scores = tables.load_cells(run, [c for c in cells if _space(c) in params["flow"]["spaces"]])
    rows = []
    for space, by_space in scores.groupby("space"):
        base, learned = by_space[by_space["prior"] == "gaussian"], by_space[by_space["prior"] == "learned"]
        if base.empty or learned.empty:
            continue
        b_fid, b_se, b_at = _best(base)
        l_fid, l_se, l_at = _best(learned)
        speed = comparisons.speedup(by_space)
        euler = speed[speed["solver"] == "euler"]
        ratio, ratio_log_se = _euler_ratio(by_space)
        cost, cost_log_se = _cost_ratio(by_space)
        dopri5, dopri5_log_se = _dopri5_ratio(by_space)
        floor_path = paths.data_floor_file(params)
        floor = tables.read_json(floor_path, "run `lediflow reference-features`") if floor_path.is_file() else {}

        def first(column: str, default: object = math.nan) -> object:
            return euler[column].iloc[0] if not euler.empty else default

        rows.append({
            "run": run.name, "space": space, "scale": params["run"]["train_scale"], "seed": params["run"]["seed"],
            **training_compute(run, space),
            "baseline_best_fid": b_fid, "baseline_best_fid_se": b_se, "baseline_best_at": b_at,
            "ledi_best_fid": l_fid, "ledi_best_fid_se": l_se, "ledi_best_at": l_at,
            # each flow at its own best cell: neither handicapped by a solver the other prefers
            "best_ratio": b_fid / l_fid, "best_ratio_log_se": math.hypot(b_se / b_fid, l_se / l_fid),
            "speedup_nfe": float(first("speedup_nfe")), "speedup_wall_clock": float(first("speedup_wall_clock")),
            "speedup_bound": str(first("speedup_bound", "")),
            **{f"speedup_nfe_{band}": float(first(f"speedup_nfe_{band}")) for band in BANDS},
            **{f"speedup_nfe_{band}_bound": str(first(f"speedup_bound_{band}", "")) for band in BANDS},
            "fid_ratio": ratio, "fid_ratio_log_se": ratio_log_se,
            **_step_ratios(by_space),
            "cost_ratio": cost, "cost_ratio_log_se": cost_log_se,
            "dopri5_ratio": dopri5, "dopri5_ratio_log_se": dopri5_log_se,
            **_inverse(by_space),
            "data_floor_fid": floor.get("fid", math.nan), "data_floor_fid_se": floor.get("fid_se", math.nan),
        })
    return rows


def common_cells(runs: list[Path]) -> list[tuple[str, str]]:
    """The (model, setting) cells every run of a space scored: the default run has more than the study arms."""
    per_run = [set(paths.cells(load_params([run / "params.yaml"]))) for run in runs]
    by_space: dict[str, set] = {}
    for cells in per_run:
        for space in {_space(c) for c in cells}:
            mine = {c for c in cells if _space(c) == space}
            by_space[space] = by_space[space] & mine if space in by_space else mine
    return sorted(c for cells in by_space.values() for c in cells)


# --- summary over seeds -------------------------------------------------------------------------------------

def _bounded(values: np.ndarray, bounds: list[str], single_se: float) -> dict:
    """Summary of a metric the grid may bound: t-interval where every seed's value is exact; otherwise the mean,
    a bound on the seeds' mean in the bounds' direction (exact values count as themselves), no interval."""
    kinds = set(bounds) - {"=", ""}
    if not kinds:
        centre, half, _ = interval(values, single_se)
        return {"value": centre, "ci": half, "bound": "", "p": p_value(values, centre, half, 1.0),
                "resolved": resolved(centre - 1, half, 0.0)}
    centre = float(np.nanmean(values))
    if kinds <= {">=", ">"}:
        lowest = float(np.nanmin(values))
        note = f", not reached in {bounds.count('>')} of {len(bounds)}" if ">" in kinds else ""
        return {"value": centre, "ci": math.nan, "bound": ">=", "p": math.nan,
                "resolved": ("yes, every seed" if lowest > 1 else "not resolved") + note}
    if kinds == {"<="}:
        return {"value": centre, "ci": math.nan, "bound": "<=", "p": math.nan, "resolved": "n/a"}
    return {"value": centre, "ci": math.nan, "bound": "mixed", "p": math.nan, "resolved": "n/a"}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, scale): every metric's mean and std over seeds, its 95% interval, its two-sided p
    against no effect, and whether the difference that matters (LeDiFlow vs baseline best FID; speedups and
    ratios vs 1) is resolved per comparison (the display controls the family)."""
    out = []
    for (space, scale), group in rows.groupby(["space", "scale"], sort=True):
        seeds = len(group)
        row: dict = {"space": space, "scale": scale, "seeds": seeds, "runs": " ".join(group["run"]),
                     # each run's hardware is already a " / " list (one device per training): merge the names
                     "hardware": " / ".join(sorted({h for hw in group["hardware"] for h in hw.split(" / ")}))}
        for column in ("ledi_train_seconds", "baseline_train_seconds", "ledi_flow_images", "baseline_flow_images"):
            row[column] = float(group[column].mean())
        single = group.iloc[0]
        for metric in METRICS:
            values = group[metric].to_numpy(float) if metric in group else np.full(seeds, math.nan)
            row[f"{metric}_std"] = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() >= 2 else math.nan
            if metric in BOUNDED:
                bounds = [str(b) for b in group[BOUNDED[metric]]] if BOUNDED[metric] in group else [""] * seeds
                done = _bounded(values, bounds, math.nan)  # a single seed's speedup has no interval
                row[metric], row[f"{metric}_ci"], row[f"{metric}_bound"] = done["value"], done["ci"], done["bound"]
                row[f"{metric}_p"], row[f"{metric}_resolved"] = done["p"], done["resolved"]
                continue
            se = math.nan
            if seeds == 1:
                se = (single[f"{metric}_se"] if metric.endswith("best_fid")
                      else single.get(metric, math.nan) * single.get(f"{metric}_log_se", math.nan))
            centre, half, how = interval(values, se)
            row[metric], row[f"{metric}_ci"] = centre, half
            if metric in RATIOS:
                row[f"{metric}_p"] = p_value(values, centre, half, 1.0)
                row[f"{metric}_resolved"] = resolved(centre - 1, half, 0.0)
        row["interval"] = "t over seeds" if seeds >= 2 else "bootstrap over samples (one seed)"
        # paired by seed: both flows of one run share its data order, reference and scorer
        gap = (group["baseline_best_fid"] - group["ledi_best_fid"]).to_numpy(float)
        gap_se = math.sqrt(single["baseline_best_fid_se"] ** 2 + single["ledi_best_fid_se"] ** 2)
        centre, half, _ = interval(gap, gap_se if seeds == 1 else math.nan)
        row["best_fid_gap"], row["best_fid_gap_ci"] = centre, half
        row["best_fid_gap_p"] = p_value(gap, centre, half, 0.0)
        row["best_fid_resolved"] = resolved(centre, half, 0.0)
        row["bound"] = row["speedup_nfe_bound"]
        row["data_floor_fid"] = float(group["data_floor_fid"].mean())
        out.append(row)
    return pd.DataFrame(out)


def _marks(summary: pd.DataFrame, metrics: tuple[str, ...]) -> tuple[dict, int]:
    """(row index, metric) -> 'yes' / 'not resolved' / 'per comparison only' with Holm over the table's tested
    metrics, and the family's size; bounds and missing intervals are not tested and keep their own label."""
    tested = [(i, m) for i, r in summary.iterrows() for m in metrics if not math.isnan(r.get(f"{m}_p", math.nan))]
    rejected = holm([float(summary.loc[i, f"{m}_p"]) for i, m in tested])
    marks = {}
    for (i, m), family_yes in zip(tested, rejected):
        raw_yes = summary.loc[i, f"{m}_p"] < 0.05
        marks[(i, m)] = "yes" if family_yes else ("per comparison only" if raw_yes else "not resolved")
    return marks, len(tested)


def _pm(row: pd.Series, metric: str, digits: int, mark: str | None) -> str:
    value, half = row.get(metric, math.nan), row.get(f"{metric}_ci", math.nan)
    if math.isnan(value):
        return ""
    bound = row.get(f"{metric}_bound", "")
    text = (f"{bound} " if bound else "") + tables.value_half(value, half, digits)
    return text + (f" ({mark})" if mark else "")


def _seeds(row: pd.Series) -> str:
    return f"{row['seeds']}" if row["seeds"] >= 2 else "1 (samples only)"


def display(summary: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The headline Markdown/LaTeX table (plain space and scale columns) and the size of its tested family."""
    tested = ("best_fid_gap", "best_ratio", "fid_ratio", "cost_ratio", "dopri5_ratio", "speedup_nfe")
    marks, family = _marks(summary, tested)

    def mark(i: int, metric: str) -> str:
        return marks.get((i, metric)) or summary.loc[i].get(f"{metric}_resolved", "")

    rows = []
    for i, r in summary.iterrows():
        rows.append({
            "space": r["space"], "scale": scale_label(r["scale"]), "seeds": _seeds(r),
            "flow images": f"{r['ledi_flow_images']:.0f}",
            "LeDiFlow train s": f"{r['ledi_train_seconds']:.0f}",
            "baseline train s": f"{r['baseline_train_seconds']:.0f}",
            "baseline best FID": _pm(r, "baseline_best_fid", 1, None),
            "LeDiFlow best FID": _pm(r, "ledi_best_fid", 1, None),
            "best / best": _pm(r, "best_ratio", 2, mark(i, "best_ratio")),
            "NFE speedup": _pm(r, "speedup_nfe", 1, mark(i, "speedup_nfe")),
            "at +5% / +10%": f"{_pm(r, 'speedup_nfe_plus5pct', 1, None)} / {_pm(r, 'speedup_nfe_plus10pct', 1, None)}",
            "wall-clock speedup": _pm(r, "speedup_wall_clock", 2, None),
            "FID ratio, equal cost": _pm(r, "cost_ratio", 2, mark(i, "cost_ratio")),
            "FID ratio, equal NFE": _pm(r, "fid_ratio", 2, mark(i, "fid_ratio")),
            "FID ratio, both dopri5": _pm(r, "dopri5_ratio", 2, mark(i, "dopri5_ratio")),
            "data floor": f"{r['data_floor_fid']:.1f}", "trained on": r["hardware"],
        })
    return pd.DataFrame(rows), family


def display_cells(summary: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Per Euler step count: the equal-NFE ratio, and the inverse speedup at LeDiFlow's 1, 2 and 4 steps."""
    ratios = tuple(f"ratio_e{s}" for s in STEP_RATIOS)
    marks, family = _marks(summary, ratios)
    rows = []
    for i, r in summary.iterrows():
        row = {"space": r["space"], "scale": scale_label(r["scale"]), "seeds": _seeds(r)}
        for steps, metric in zip(STEP_RATIOS, ratios):
            row[f"FID ratio, Euler {steps}"] = _pm(r, metric, 2, marks.get((i, metric), r.get(f"{metric}_resolved")))
        for steps in comparisons.INVERSE_STEPS:
            metric = f"inverse_e{steps}"
            reached = str(r[f"{metric}_resolved"])
            note = f" ({reached[reached.index('not reached'):]})" if "not reached" in reached else ""
            row[f"inverse speedup, {steps} step{'s' if steps > 1 else ''}"] = _pm(r, metric, 1, None) + note
        rows.append(row)
    return pd.DataFrame(rows), family


CAPTION = ("Scaling study: every network's training steps multiplied by the scale (run.train_scale; x1 is the "
           "default run), the Gaussian baseline at equal measured training compute at every scale. Per space and "
           "scale, definitions of lediflow/analysis/comparisons.py: best FID of each flow over its solver cells; best / "
           "best = baseline best / LeDiFlow best, each flow at its own best solver; NFE speedup = baseline NFE "
           "at its best FID (first Euler grid point within tolerance) over the NFE where LeDiFlow's Euler curve "
           "reaches that FID, interpolated on log NFE, '>=' only where LeDiFlow's first grid point is already at "
           "or below it; at +5% / +10%: the same with the target 5% / 10% above the baseline's best and both NFEs "
           "interpolated (how far a plateau cell moves it); wall-clock speedup: the same match in measured "
           "ms/image, under the same bound; FID ratio, equal cost: the baseline's FID at LeDiFlow's measured "
           "ms/image over LeDiFlow's, geometric mean over LeDiFlow's Euler cells inside the baseline's cost "
           "range; equal NFE: geometric mean over Euler 1-8 (per step in scaling_cells); both dopri5: both flows "
           "solved by dopri5 at its tightest tolerance, LeDiFlow's dopri5 cell often worse than its own few-step "
           "cells, so a lower bound on its lead. Seeds (run.seed: initialisation, data order, sampling noise): "
           "each seed's value first, then mean ± 95% t-interval over seeds; '1 (samples only)': ± the 95% "
           "bootstrap over that seed's 1000 samples, which leaves out seed-to-seed variation (at x1, where three "
           "seeds exist, it is 2-2.5x narrower than the seeds' spread); geometric means of one seed use the "
           "bound over correlations between step cells. A speedup that a seed's grid bounds is reported as "
           "'>=' the seeds' mean with no interval. Marks: the {family} tested intervals of this table (gaps "
           "against 0, ratios and exact speedups against 1) are Holm-controlled as one family at 5%: 'yes' "
           "holds for the family, 'per comparison only' excludes the null in its own interval but not after "
           "Holm. LeDiFlow train s: measured seconds of its whole pipeline in the space (autoencoder, prior, "
           "latent sampler, flow); baseline train s: the Gaussian flow's (and the autoencoder in latent space); "
           "flow images: images LeDiFlow's flow saw, the figures' x-axis.")

CELLS_CAPTION = ("Scaling study, per step count: FID ratio baseline / LeDiFlow at each equal Euler NFE (delta "
                 "method for one seed, t over seeds), marks Holm-controlled over this table's {family} tested "
                 "ratios; inverse speedup: the baseline Euler NFE (interpolated on log NFE) needed to reach "
                 "LeDiFlow's FID at 1, 2 and 4 Euler steps, over those steps; '>=' where a seed's baseline "
                 "never reaches it on its grid (then its last NFE stands in, a lower bound) and the count of such "
                 "seeds. Seeds and intervals as in the scaling table.")


def write(runs: list[Path], out: Path) -> pd.DataFrame:
    """results/scaling/{scaling.md,csv,tex} (display), scaling_runs.csv (per run and space), scaling_steps.*
    (the change between budgets, paired by seed), the figures."""
    from lediflow.core import artifacts
    from lediflow.analysis import figures
    from lediflow.studies import scaling_steps

    cells = common_cells(runs)
    rows = pd.DataFrame([row for run in runs for row in run_rows(run, cells)])
    if rows.empty:
        raise LediflowError("no run of the study has both flows of a space scored; finish the arms first")
    summary = summarise(rows)
    shown, family = display(summary)
    tables.write_table(shown, out, "scaling", CAPTION.format(family=family))
    shown, family = display_cells(summary)
    tables.write_table(shown, out, "scaling_cells", CELLS_CAPTION.format(family=family))
    artifacts.write_text_atomic(out / "scaling_runs.csv", rows.to_csv(index=False, float_format="%.6g"))
    artifacts.write_text_atomic(out / "scaling_summary.csv", summary.to_csv(index=False, float_format="%.6g"))
    changes = scaling_steps.steps(rows)
    if not changes.empty:
        tables.write_table(scaling_steps.display(changes, scale_label), out, "scaling_steps", scaling_steps.CAPTION)
    figures.scaling(summary, out)
    return summary
