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
from lediflow.analysis.significance import interval, p_value, resolved
from lediflow.analysis.tables import Z95
from lediflow.pipeline import paths
from lediflow.core.errors import LediflowError
from lediflow.pipeline.config import load_params, read_yaml
from lediflow.studies import methods
from lediflow.studies.methods import METHODS
from lediflow.studies.scaling_tables import (CAPTION, CELLS_CAPTION, METHODS_CAPTION, display, display_cells,
                                             display_methods)
from lediflow.studies.scaling import (BANDS, BOUNDED, METRICS, PRIOR_MODELS, PRIORS, RATIOS, STEP_RATIOS,
                                      scale_label)


# --- per run ------------------------------------------------------------------------------------------------

def loaded_autoencoder_run(run: Path) -> Path | None:
    """The run whose trained autoencoder `run` loads (a fixed_autoencoder arm), from its params.yaml; else None."""
    params = run / "params.yaml"
    if not params.is_file():
        return None
    autoencoder = read_yaml(params).get("autoencoder", {})
    folder = Path(str(autoencoder.get("pretrained", "")))
    if autoencoder.get("source") != "pretrained" or folder.parts[-3:] != ("models", "autoencoder", "vae"):
        return None
    return folder.parents[2]


def training_record(run: Path, model: str) -> dict:
    """A model's training record; an arm that loads another run's autoencoder counts that run's training of it,
    the cost its pipeline still carries (once, shared by every arm that loads it)."""
    record = tables.training_record(run, model)
    source = loaded_autoencoder_run(run) if model == "autoencoder" and not record else None
    return tables.training_record(source, model) if source is not None else record


def training_compute(run: Path, space: str, method: str = "learned", against: str = "gaussian",
                     against_run: Path | None = None) -> dict:
    """Measured training seconds of each side's pipeline in the space and its flow's images seen (NaN if
    unrecorded); the `ledi_` columns are the method's side, the `baseline_` ones the side it is compared against
    (held by `against_run` where another run trained it)."""
    sides = ((run, method, "ledi"), (against_run or run, against, "baseline"))

    def total(holder: Path, models: list[str], key: str) -> float:
        values = [training_record(holder, m).get(key, math.nan) for m in models]
        return float(sum(values)) if values else math.nan

    devices = {str(training_record(holder, m).get("device", "")) for holder, prior, _ in sides
               for m in PRIOR_MODELS[prior][space]} - {""}
    out: dict = {"hardware": " / ".join(sorted(devices)) or "not recorded"}
    for holder, prior, side in sides:
        out[f"{side}_train_seconds"] = total(holder, PRIOR_MODELS[prior][space], "train_seconds")
    for holder, prior, side in sides:
        out[f"{side}_flow_images"] = total(holder, [f"flow-{space}-{prior}"], "samples_seen")
    return out


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


def space_metrics(by_space: pd.DataFrame, same_clock: bool = True) -> dict:
    """Both flows' best FID, the speedups and the FID ratios of one space's cells, read as comparisons reads
    them: prior 'gaussian' the side compared against, 'learned' the method. Without `same_clock` (the two
    flows timed in different runs, so nothing says on the same machine) the measured-time comparisons are NaN."""
    base, learned = by_space[by_space["prior"] == "gaussian"], by_space[by_space["prior"] == "learned"]
    b_fid, b_se, b_at = _best(base)
    l_fid, l_se, l_at = _best(learned)
    speed = comparisons.speedup(by_space)
    euler = speed[speed["solver"] == "euler"]
    ratio, ratio_log_se = _euler_ratio(by_space)
    cost, cost_log_se = _cost_ratio(by_space) if same_clock else (math.nan, math.nan)
    dopri5, dopri5_log_se = _dopri5_ratio(by_space)

    def first(column: str, default: object = math.nan) -> object:
        return euler[column].iloc[0] if not euler.empty else default

    return {
        "baseline_best_fid": b_fid, "baseline_best_fid_se": b_se, "baseline_best_at": b_at,
        "ledi_best_fid": l_fid, "ledi_best_fid_se": l_se, "ledi_best_at": l_at,
        # each flow at its own best cell: neither handicapped by a solver the other prefers
        "best_ratio": b_fid / l_fid, "best_ratio_log_se": math.hypot(b_se / b_fid, l_se / l_fid),
        "speedup_nfe": float(first("speedup_nfe")),
        "speedup_wall_clock": float(first("speedup_wall_clock")) if same_clock else math.nan,
        "speedup_bound": str(first("speedup_bound", "")),
        **{f"speedup_nfe_{band}": float(first(f"speedup_nfe_{band}")) for band in BANDS},
        **{f"speedup_nfe_{band}_bound": str(first(f"speedup_bound_{band}", "")) for band in BANDS},
        "fid_ratio": ratio, "fid_ratio_log_se": ratio_log_se,
        **_step_ratios(by_space),
        "cost_ratio": cost, "cost_ratio_log_se": cost_log_se,
        "dopri5_ratio": dopri5, "dopri5_ratio_log_se": dopri5_log_se,
        **_inverse(by_space),
    }


def _floor(params: dict) -> dict:
    path = paths.data_floor_file(params)
    floor = tables.read_json(path, "run `lediflow reference-features`") if path.is_file() else {}
    return {"data_floor_fid": floor.get("fid", math.nan), "data_floor_fid_se": floor.get("fid_se", math.nan)}


def run_rows(run: Path, cells: list[tuple[str, str]]) -> list[dict]:
    """One row per space of the run: its scale, seed, compute, both best FIDs, speedups and FID ratio."""
    params = load_params([run / "params.yaml"])
    # a split-space arm trains one space: it is scored on the common cells of that space only
    scores = tables.load_cells(run, [c for c in cells if _space(c) in params["flow"]["spaces"]])
    rows = []
    for space, by_space in scores.groupby("space"):
        by_space = by_space[by_space["prior"].isin(PRIORS)]
        if set(by_space["prior"]) != set(PRIORS):
            continue
        rows.append({"run": run.name, "space": space, "scale": params["run"]["train_scale"],
                     "seed": params["run"]["seed"], **training_compute(run, space),
                     **space_metrics(by_space), **_floor(params)})
    return rows


# --- the third method: OT-CFM beside the two flows ----------------------------------------------------------

# (method, against): LeDiFlow against each Gaussian-source baseline, and OT-CFM against the Gaussian baseline
PAIRS = (("learned", "gaussian"), ("learned", "ot"), ("ot", "gaussian"))


def _study_cells(scores: pd.DataFrame, cells: list[tuple[str, str]]) -> pd.DataFrame:
    """The study's common cells of every method: OT-CFM is scored on the Gaussian baseline's grid (both are
    Gaussian sources: baseline_extra_steps applies to both), so it keeps the settings the baseline keeps."""
    keep = {(paths.parse_flow_name(model)[0], paths.parse_flow_name(model)[1], setting) for model, setting in cells}
    twin = scores["prior"].replace({"ot": "gaussian"})
    return scores[[(sp, pr, st) in keep for sp, pr, st in zip(scores["space"], twin, scores["setting"])]]


def method_rows(runs: list[Path], cells: list[tuple[str, str]]) -> list[dict]:
    """Per (space, scale, seed) where some run trained OT-CFM: one row per pair of PAIRS, each flow's cells read
    from the run that holds it (an arm of the study trains all three; at x1 the OT-CFM arm of workflow/methods.smk
    sits beside the default run). The runs of one (scale, seed) must share data, sampling, scorer, budget and
    latent space (lediflow.studies.methods.load refuses them in one line otherwise)."""
    groups: dict[tuple[float, int], list[Path]] = {}
    for run in runs:
        params = load_params([run / "params.yaml"])
        groups.setdefault((float(params["run"]["train_scale"]), int(params["run"]["seed"])), []).append(run)
    rows = []
    for (scale, seed), members in sorted(groups.items()):
        if not any("ot" in load_params([run / "params.yaml"])["flow"]["priors"] for run in members):
            continue
        scores = _study_cells(methods.load(members), cells)
        for space, by_space in scores.groupby("space"):
            holder = {prior: next(r for r in members if r.name == name)
                      for prior, name in zip(by_space["prior"], by_space["run"])}
            if "ot" not in holder:
                continue
            for method, against in PAIRS:
                if method not in holder or against not in holder:
                    continue
                pair = methods.pair(by_space, space, against, method)
                same_clock = holder[method] == holder[against]
                rows.append({"run": " ".join(sorted({holder[method].name, holder[against].name})), "space": space,
                             "scale": scale, "seed": seed, "method": method, "against": against,
                             **training_compute(holder[method], space, method, against, holder[against]),
                             **space_metrics(pair, same_clock),
                             **_floor(load_params([holder[method] / "params.yaml"]))})
    return rows


def summarise_methods(rows: pd.DataFrame) -> pd.DataFrame:
    """summarise() per pair of PAIRS, with the pair's names; the pairs in PAIRS' order within each budget."""
    frames = []
    for order, (method, against) in enumerate(PAIRS):
        chosen = rows[(rows["method"] == method) & (rows["against"] == against)]
        if chosen.empty:
            continue
        summary = summarise(chosen.drop(columns=["method", "against"]))
        summary.insert(2, "method", METHODS[method])
        summary.insert(3, "against", METHODS[against])
        summary["pair_order"] = order
        frames.append(summary)
    if not frames:
        return pd.DataFrame()
    joined = pd.concat(frames, ignore_index=True).sort_values(["space", "scale", "pair_order"], kind="stable")
    return joined.drop(columns="pair_order").reset_index(drop=True)


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
    if not np.isfinite(values).any():  # not measured (wall-clock across runs): nothing to summarise or bound
        return {"value": math.nan, "ci": math.nan, "bound": "", "p": math.nan, "resolved": "n/a"}
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


def write(runs: list[Path], out: Path, method_runs: list[Path] | None = None) -> pd.DataFrame:
    """results/scaling/{scaling.md,csv,tex} (display), scaling_runs.csv (per run and space), scaling_steps.*
    (the change between budgets, paired by seed), the figures; where some run trained OT-CFM (an arm at the
    study's ot_cfm scales, or one of `method_runs`: runs that add OT-CFM to an arm of the same scale and seed),
    scaling_methods.* (the three methods per budget) and scaling_methods_runs.csv."""
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
    compared = pd.DataFrame(method_rows([*runs, *(method_runs or [])], cells))
    three = summarise_methods(compared) if not compared.empty else None
    if three is not None:
        shown, family = display_methods(three)
        tables.write_table(shown, out, "scaling_methods", METHODS_CAPTION.format(family=family))
        artifacts.write_text_atomic(out / "scaling_methods_runs.csv",
                                    compared.to_csv(index=False, float_format="%.6g"))
    figures.scaling(summary, out, three)
    return summary
