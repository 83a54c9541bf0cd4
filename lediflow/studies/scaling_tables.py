"""How the scaling study's summary is printed: value ± interval per metric, bounds as bounds, the resolved
marks with Holm's correction over the table's family, and the captions of scaling.md, scaling_cells.md and
scaling_methods.md."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from lediflow.analysis import comparisons, tables
from lediflow.analysis.significance import holm
from lediflow.studies.scaling import STEP_RATIOS, scale_label


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


def _marker(summary: pd.DataFrame, tested: tuple[str, ...]) -> tuple[Callable[[int, str], str], int]:
    """(row index, metric) -> its mark: Holm's over the tested family, else the summary's own label; and the
    family's size."""
    marks, family = _marks(summary, tested)

    def mark(i: int, metric: str) -> str:
        return marks.get((i, metric)) or summary.loc[i].get(f"{metric}_resolved", "")

    return mark, family


def _bands(row: pd.Series) -> str:
    """The speedup with the target 5% and 10% above the best FID: how far a plateau cell moves it."""
    return f"{_pm(row, 'speedup_nfe_plus5pct', 1, None)} / {_pm(row, 'speedup_nfe_plus10pct', 1, None)}"


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
    mark, family = _marker(summary, tested)

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
            "at +5% / +10%": _bands(r),
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


def display_methods(summary: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Three methods per budget: each pair's best FIDs, best / best, matched speedup, equal-NFE ratios (per step
    and their geometric mean) and inverse speedup, marks Holm-controlled over this table's family."""
    tested = ("best_ratio", "fid_ratio", "ratio_e1", "ratio_e2", "speedup_nfe")
    mark, family = _marker(summary, tested)

    rows = []
    for i, r in summary.iterrows():
        rows.append({
            "space": r["space"], "scale": scale_label(r["scale"]), "seeds": _seeds(r),
            "method": r["method"], "against": r["against"],
            "method best FID": _pm(r, "ledi_best_fid", 1, None),
            "against best FID": _pm(r, "baseline_best_fid", 1, None),
            "best / best": _pm(r, "best_ratio", 2, mark(i, "best_ratio")),
            "NFE speedup": _pm(r, "speedup_nfe", 1, mark(i, "speedup_nfe")),
            "at +5% / +10%": _bands(r),
            "wall-clock speedup": _pm(r, "speedup_wall_clock", 2, None) or "n/a (other run)",
            "FID ratio, Euler 1": _pm(r, "ratio_e1", 2, mark(i, "ratio_e1")),
            "FID ratio, Euler 2": _pm(r, "ratio_e2", 2, mark(i, "ratio_e2")),
            "FID ratio, equal NFE": _pm(r, "fid_ratio", 2, mark(i, "fid_ratio")),
            "inverse speedup, 1 step": _pm(r, "inverse_e1", 1, None),
            "method train s": f"{r['ledi_train_seconds']:.0f}",
            "against train s": f"{r['baseline_train_seconds']:.0f}",
        })
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

METHODS_CAPTION = ("Scaling study, three methods per budget where OT-CFM was trained (the study's ot_cfm scales; at x1 "
                   "the OT-CFM run of workflow/methods.smk beside the default run): OT-CFM is the Gaussian source "
                   "re-paired with each training batch by exact minibatch optimal transport (Tong et al. 2023), the "
                   "baseline's network, optimiser and steps. Each row compares 'method' with 'against' by the "
                   "scaling table's definitions, read with 'against' as the baseline: best / best = against's best "
                   "FID over the method's; NFE speedup at against's best FID ('>=' only where the method's first "
                   "grid point is already below it); FID ratio against / method at Euler 1, 2 and their geometric "
                   "mean over Euler 1-8; inverse speedup: against's Euler NFE for the method's one-step FID. "
                   "Wall-clock only where both flows were timed back to back in one run (at x1 the seed arms; "
                   "seed 0's OT-CFM is a run of its own, so its measured-time comparisons with OT-CFM are left "
                   "out and those columns are over the other seeds). Seeds and intervals as in the scaling table; "
                   "marks Holm-controlled over this table's {family} tested intervals. "
                   "train s: measured seconds of each side's pipeline in the space (the shared autoencoder on both).")
