"""Three sources side by side: the Gaussian baseline, OT-CFM and LeDiFlow, from one or several finished runs.

A run trains the flows its flow.priors names; the OT-CFM arm (configs/methods/) is a run with priors [ot] and
everything else the default run's, so its cells sit on the same data, reference, sample seeds and scorer as
the default run's two flows. This module joins the runs' cells (refusing runs whose scoring differs), then
compares LeDiFlow with each Gaussian-source baseline by the definitions of lediflow.analysis.comparisons (best cell
against best cell, matched speedup with its bound, equal-NFE ratio per Euler step, inverse speedup), and
OT-CFM with the Gaussian baseline (does minibatch OT alone straighten the paths?). Wall-clock comparisons need
both sides timed back to back on one machine, which only the cells of one run are: across runs they are left out.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lediflow.analysis import comparisons, tables
from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError
from lediflow.pipeline.paths import cells as run_cells
from lediflow.analysis.tables import Z95

METHODS = {"gaussian": "FM baseline (Gaussian)", "ot": "OT-CFM (Gaussian, minibatch OT)",
           "learned": "LeDiFlow (learned prior)"}
# what must be equal for cells of two runs to be compared: the data, how samples are drawn and the scorer (the
# solver grid may differ: only the cells both curves need are read, each from its own run)
SHARED_SECTIONS = ("data", "sample", "score")
GRID_KEYS = ("solvers", "steps", "baseline_extra_steps", "dopri5_tolerances")


def _timing_device(run: Path, space: str) -> str:
    path = run / "timing" / f"{space}.json"
    return str(tables.read_json(path, "run `snakemake --cores all`").get("device", "")) if path.is_file() else ""


def latent_space(run: Path, params: dict) -> tuple:
    """What makes a run's latent space: the autoencoder params, data and seed it trained with, or the folder
    it loaded. A run that loads another run's trained autoencoder (autoencoder.pretrained =
    <results>/<run>/models/autoencoder/vae) shares that run's latent space."""
    codec = params["autoencoder"]
    if codec["source"] == "pretrained":
        folder = Path(str(codec["pretrained"]))
        if folder.name == "vae" and folder.parent.name == "autoencoder" and folder.parent.parent.name == "models":
            owner = folder.parent.parent.parent
            made_by = owner / "params.yaml" if owner.is_absolute() else run.parent / owner.name / "params.yaml"
            if made_by.is_file():
                return latent_space(made_by.parent, load_params([made_by]))
        return ("pretrained", str(folder), codec.get("subfolder"))
    trained = {k: v for k, v in codec.items() if k not in ("source", "pretrained", "subfolder")}
    return ("trained", repr(sorted(trained.items())), repr(sorted(params["data"].items())), params["run"]["seed"])


def load(runs: list[Path]) -> pd.DataFrame:
    """Every scored cell of the runs, with the run and its timing device; one-line refusal where runs differ in
    what makes cells comparable, or two runs hold the same (space, prior)."""
    frames, seen = [], {}  # key -> (the first run that has it, its value)
    for run in runs:
        params = load_params([run / "params.yaml"])
        shared = {k: params[k] for k in SHARED_SECTIONS}
        shared["sample"] = {k: v for k, v in shared["sample"].items() if k not in GRID_KEYS}
        shared["seed"] = params["run"]["seed"]
        shared["training budget (run.train_scale)"] = params["run"]["train_scale"]
        if "latent" in params["flow"]["spaces"]:
            shared["latent space (autoencoder)"] = latent_space(run, params)
        for key, value in shared.items():
            other, known = seen.setdefault(key, (run, value))
            if known != value:
                raise LediflowError(f"runs {other} and {run} differ in {key}: their cells are not "
                                    "comparable; make the method's arm with the other run's params")
        scores = tables.load_cells(run, run_cells(params))
        scores["run"] = run.name
        scores["timed_on"] = [_timing_device(run, space) for space in scores["space"]]
        frames.append(scores)
    joined = pd.concat(frames, ignore_index=True)
    twice = joined.groupby(["space", "prior"])["run"].nunique()
    if (twice > 1).any():
        space, prior = twice[twice > 1].index[0]
        raise LediflowError(f"two runs hold flow-{space}-{prior}; pass one run per (space, prior)")
    return joined


def pair(scores: pd.DataFrame, space: str, baseline: str, learned: str) -> pd.DataFrame:
    """The two methods' cells of one space, relabelled baseline -> 'gaussian' and learned -> 'learned', so the
    comparisons of lediflow.analysis.comparisons read them as their two arms."""
    both = scores[(scores["space"] == space) & scores["prior"].isin([baseline, learned])].copy()
    both["prior"] = both["prior"].map({baseline: "gaussian", learned: "learned"})
    return both


def compare(scores: pd.DataFrame, space: str, baseline: str, learned: str) -> dict:
    """One row: `learned` against `baseline` in `space` (best vs best, speedups, per-step and inverse)."""
    both = pair(scores, space, baseline, learned)
    base, ledi = both[both["prior"] == "gaussian"], both[both["prior"] == "learned"]
    b, lrn = tables.best_solver_cell(base), tables.best_solver_cell(ledi)
    ratio = b["fid"] / lrn["fid"]
    # the time-cells stage times a run's flows back to back on one machine; across runs nothing says the machine
    # (or its load) was the same, so wall-clock is compared within a run only
    same_clock = base["run"].iloc[0] == ledi["run"].iloc[0] and base["timed_on"].iloc[0] != ""
    row = {"space": space, "method": METHODS[learned], "against": METHODS[baseline],
           "best / best": ratio, "best / best ci": Z95 * ratio * math.hypot(b["fid_se"] / b["fid"],
                                                                           lrn["fid_se"] / lrn["fid"])}
    speed = comparisons.speedup(both)
    euler = speed[speed["solver"] == "euler"]
    if not euler.empty:
        e = euler.iloc[0]
        row.update({"NFE speedup": e["speedup_nfe"], "bound": e["speedup_bound"],
                    "NFE speedup at +5%": e["speedup_nfe_plus5pct"], "bound at +5%": e["speedup_bound_plus5pct"],
                    "wall-clock speedup": e["speedup_wall_clock"] if same_clock else math.nan})
    ratios = comparisons.quality_ratio(both)
    cells = ratios[ratios["solver"] == "euler"].set_index("steps")
    for steps in ("1", "2", "4", "8", "geomean"):
        if steps in cells.index:
            row[f"Euler {steps}"], row[f"Euler {steps} ci"] = cells.loc[steps, "fid"], cells.loc[steps, "fid_ci"]
    inverse = comparisons.inverse_speedup(both)
    one = inverse[(inverse["solver"] == "euler") & (inverse["steps"] == 1)]
    if not one.empty:
        row["inverse speedup, 1 step"], row["inverse bound"] = one["inverse_speedup"].iloc[0], one["bound"].iloc[0]
    return row


def best_cells(scores: pd.DataFrame) -> pd.DataFrame:
    """Per space and method: its best solver cell's FID ± 95%, where, and its precision/recall where scored."""
    rows = []
    for (space, prior), group in scores.groupby(["space", "prior"], sort=False):
        best = tables.best_solver_cell(group)
        if best is None:
            continue
        one = group[(group["solver"] == "euler") & (group["steps"] == 1)]
        rows.append({"space": space, "method": METHODS[prior], "run": group["run"].iloc[0],
                     "best FID": best["fid"], "best FID ci": Z95 * best["fid_se"], "best cell": best["setting"],
                     "Euler 1 FID": float(one["fid"].iloc[0]) if not one.empty else math.nan,
                     "precision (best)": best.get("precision", math.nan),
                     "recall (best)": best.get("recall", math.nan)})
    return pd.DataFrame(rows)


def comparisons_table(scores: pd.DataFrame) -> pd.DataFrame:
    """LeDiFlow against each Gaussian-source baseline present, and OT-CFM against the Gaussian baseline."""
    rows = []
    for space in sorted(scores["space"].unique()):
        present = set(scores.loc[scores["space"] == space, "prior"])
        for learned, baseline in (("learned", "gaussian"), ("learned", "ot"), ("ot", "gaussian")):
            if {learned, baseline} <= present:
                rows.append(compare(scores, space, baseline, learned))
    return pd.DataFrame(rows)


def _pm(value: float, half: float, digits: int) -> str:
    return tables.value_half(value, half, digits)


def display(best: pd.DataFrame, compared: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    shown_best = pd.DataFrame([{
        "space": r["space"], "method": r["method"], "run": r["run"],
        "best FID": _pm(r["best FID"], r["best FID ci"], 1) + f" ({r['best cell']})",
        "Euler 1 FID": _pm(r["Euler 1 FID"], math.nan, 1),
        "precision / recall (best cell)": "" if math.isnan(r["precision (best)"])
        else f"{r['precision (best)']:.2f} / {r['recall (best)']:.2f}"} for _, r in best.iterrows()])

    def bounded(value: float, bound: str, digits: int = 1) -> str:
        if value is None or math.isnan(value):
            return ""
        return ("" if bound in ("=", "") else f"{bound} ") + f"{value:.{digits}f}"

    rows = []
    for _, r in compared.iterrows():
        row = {"space": r["space"], "method": r["method"], "against": r["against"],
               "best / best": _pm(r["best / best"], r["best / best ci"], 2),
               "NFE speedup (Euler)": bounded(r.get("NFE speedup", math.nan), r.get("bound", "")),
               "at +5%": bounded(r.get("NFE speedup at +5%", math.nan), r.get("bound at +5%", "")),
               "wall-clock": bounded(r.get("wall-clock speedup", math.nan), r.get("bound", ""), 2) or "n/a (other run)"}
        for steps in ("1", "2", "4", "8", "geomean"):
            row[f"FID ratio, Euler {steps}"] = _pm(r.get(f"Euler {steps}", math.nan),
                                                    r.get(f"Euler {steps} ci", math.nan), 2)
        row["inverse speedup, 1 step"] = bounded(r.get("inverse speedup, 1 step", math.nan),
                                                 r.get("inverse bound", ""))
        rows.append(row)
    return shown_best, pd.DataFrame(rows)


BEST_CAPTION = ("Each method's best solver cell (FID ± 95% bootstrap over its 1000 samples, one seed), its "
                "one-step Euler FID, and precision / recall (Kynkaanniemi et al. 2019, k = 3) of the best cell "
                "where its score file has them. OT-CFM: the Gaussian source re-paired with each training batch "
                "by exact minibatch optimal transport (Tong et al. 2023), same network, optimiser and steps as "
                "the Gaussian baseline (which flow.baseline_extra_steps sets to LeDiFlow's measured compute).")
CAPTION = ("Method against baseline, one seed, definitions of lediflow/analysis/comparisons.py: best / best = the "
           "baseline's best FID over the method's (± 95%, delta method); NFE speedup = the baseline's NFE at its "
           "best FID over where the method's Euler curve reaches it (interpolated on log NFE; '>=' where the "
           "method's first grid point is already below it); at +5%: the target 5% above the baseline's best; "
           "wall-clock only between flows of one run (timed back to back); FID ratio baseline / method at equal "
           "Euler NFE (geomean: over 1-8, its interval the bound over correlated cells); inverse speedup: the "
           "baseline NFE "
           "needed for the method's one-step FID over 1 ('>' : never on its grid). Intervals are over samples "
           "only (one seed), so per comparison, no family correction.")


def write(runs: list[Path], out: Path) -> pd.DataFrame:
    """results/methods/{methods_best,methods}.{md,csv,tex} and methods_fid_vs_nfe.png (FID against Euler NFE)."""
    from lediflow.analysis import figures

    scores = load(runs)
    best, compared = best_cells(scores), comparisons_table(scores)
    if compared.empty:
        raise LediflowError("no space holds LeDiFlow and a Gaussian-source baseline; pass the runs that train them")
    shown_best, shown = display(best, compared)
    tables.write_table(shown_best, out, "methods_best", BEST_CAPTION)
    tables.write_table(shown, out, "methods", CAPTION)
    figures.methods(scores, out, METHODS)
    return compared
