"""The scaling study (issue 16): LeDiFlow's effect against training compute, with seeds.

Each arm is an ordinary run with `run.train_scale` (every network's optimiser steps multiplied together, the
baseline keeping its equal-compute share) and a `run.seed` (initialisation, data order and sampling noise);
the x1 seed-0 arm is the default run itself. Per run and space: both flows' best FID, the NFE and wall-clock
speedup at matched FID and the FID ratio at equal NFE (the definitions of lediflow.comparisons), and the
measured training compute. Per (space, scale) those are summarised over seeds: each seed's ratios first, then
mean +- std; an arm with one seed keeps its bootstrap interval over samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lediflow import comparisons, paths, tables
from lediflow.config import load_params, read_yaml
from lediflow.errors import LediflowError
from lediflow.tables import Z95

SPACES = ("pixel", "latent")
# What each space's two pipelines train (results/<run>/training/<model>.json); the autoencoder is LeDiFlow's
# and the baseline's shared cost in latent space, counted on both sides.
BASELINE_MODELS = {"pixel": ["flow-pixel-gaussian"], "latent": ["autoencoder", "flow-latent-gaussian"]}
LEDI_MODELS = {"pixel": ["prior-pixel", "latent_sampler-pixel", "flow-pixel-learned"],
               "latent": ["autoencoder", "prior-latent", "latent_sampler-latent", "flow-latent-learned"]}
METRICS = ("baseline_best_fid", "ledi_best_fid", "speedup_nfe", "speedup_wall_clock", "fid_ratio", "dopri5_ratio")


@dataclass(frozen=True)
class Arm:
    """One run of the study: the spaces it trains, at one scale and seed; `default` marks the default run."""

    name: str
    spaces: tuple[str, ...]
    scale: float
    seed: int
    default: bool = False

    def overlay(self) -> dict:
        """The config overlay that makes this arm an ordinary run (none for the default run)."""
        return {"run": {"name": self.name, "train_scale": self.scale, "seed": self.seed},
                "flow": {"spaces": list(self.spaces)}}


def load_spec(path: str | Path) -> dict:
    """Read and check a scaling study file (configs/scaling/study.yaml); one-line errors name the fix."""
    if not Path(path).is_file():
        raise LediflowError(f"no scaling study file at {path}; pass `lediflow scaling-cost --study <file>` or "
                            "`snakemake -s workflow/scaling.smk --config study=<file>` "
                            "(see configs/scaling/study.yaml)")
    spec = read_yaml(path)
    for key in ("configs", "budget", "scales", "seeds", "out"):
        if key not in spec:
            raise LediflowError(f"scaling study {path} has no '{key}'; see configs/scaling/study.yaml")
    unknown = set(spec["scales"]) - set(SPACES)
    if unknown:
        raise LediflowError(f"scaling study {path}: unknown space {sorted(unknown)[0]}; use pixel or latent")
    for space, scales in spec["scales"].items():
        if 1 not in scales or any(s <= 0 for s in scales):
            raise LediflowError(f"scaling study {path}: scales.{space} must be positive and include 1 (the "
                                "default run)")
    if 0 not in spec["seeds"]:
        raise LediflowError(f"scaling study {path}: seeds must include 0 (the default run's seed)")
    return spec


def seeded_scales(spec: dict, space: str) -> list[float]:
    """Scales that get every seed: those the study names, else x1 and the largest of the space."""
    named = spec.get("seeded_scales", {}).get(space)
    return sorted(set(named)) if named is not None else sorted({1, max(spec["scales"][space])})


def scale_label(scale: float) -> str:
    return f"x{scale:g}"


def arms(spec: dict, default_name: str) -> list[Arm]:
    """One run per (scale, seed) holding every space that needs it, or with `split_spaces` one run per (space,
    scale, seed) (each a shorter job: what fits one session of a machine that keeps no checkpoints between
    sessions); x1 seed 0 is the default run either way."""
    split = bool(spec.get("split_spaces", False))
    wanted: dict[tuple[str, float, int], list[str]] = {}
    for space in SPACES:
        for scale in spec["scales"].get(space, []):
            seeds = spec["seeds"] if scale in seeded_scales(spec, space) else [0]
            for seed in seeds:
                default = scale == 1 and seed == 0
                key = (space if split and not default else "", float(scale), int(seed))
                wanted.setdefault(key, []).append(space)
    out = []
    for (space, scale, seed), spaces in sorted(wanted.items(), key=lambda item: item[0][1:] + item[0][:1]):
        if scale == 1 and seed == 0:
            out.append(Arm(default_name, tuple(spaces), scale, seed, default=True))
        else:
            prefix = f"scaling-{space}-" if space else "scaling-"
            out.append(Arm(f"{prefix}{scale_label(scale)}-s{seed}", tuple(spaces), scale, seed))
    return out


# --- continuing the smaller arm's training ------------------------------------------------------------------

SPACE_MODELS = {"pixel": ("prior-pixel", "latent_sampler-pixel", "flow-pixel-gaussian", "flow-pixel-learned"),
                "latent": ("autoencoder", "prior-latent", "latent_sampler-latent", "flow-latent-gaussian",
                           "flow-latent-learned")}
# The networks whose inputs do not depend on the scale, so seed_checkpoints' copy is resumed by a larger arm (the
# latent prior, sampler and flows learn from latents of a longer-trained autoencoder and start afresh).
CONTINUES = frozenset({"autoencoder", "prior-pixel", "flow-pixel-gaussian"})


def predecessors(planned: list[Arm]) -> dict[str, dict[str, str]]:
    """arm -> space -> the arm of the same seed with the largest smaller scale that trains that space. The default
    run continues nothing: `snakemake --cores all` makes it from scratch, before or without the study."""
    out: dict[str, dict[str, str]] = {}
    for arm in planned:
        if arm.default:
            continue
        for space in arm.spaces:
            smaller = [a for a in planned if a.seed == arm.seed and a.scale < arm.scale and space in a.spaces]
            if smaller:
                out.setdefault(arm.name, {})[space] = max(smaller, key=lambda a: a.scale).name
    return out


def tables_marker(run: Path) -> Path:
    """The file whose presence marks an arm finished: its run's tables (workflow/scaling.smk's arm output)."""
    return run / "tables" / "scores_long.csv"


def finished(run: Path) -> bool:
    """An arm with its tables is finished: workflow/scaling.smk never reruns it."""
    return tables_marker(run).is_file()


def has_checkpoint(run: Path, model: str) -> bool:
    """Whether a run still holds a checkpoint of `model` for a larger arm to continue (checkpoints are DVC's,
    not git's: a fresh clone has none, so a larger arm there trains afresh)."""
    return any((run / "models" / model / "checkpoints").glob("step_*"))


def seed_checkpoints(source_run: Path, run: Path, space: str) -> list[str]:
    """Copy the newest checkpoint of each of the space's networks from a smaller arm into this arm's empty
    checkpoint folders; returns the networks copied.

    The trainer resumes a checkpoint only when its fingerprint (data or latents, seed, every setting but the
    step budget, the weights of the networks it learns from) is this arm's, and deletes it otherwise: so the
    autoencoder, the pixel prior and the pixel baseline continue (their inputs do not depend on the scale) and
    the rest train afresh. With the learning rate constant after warm-up and the optimiser, EMA and random-number
    state in the checkpoint, the continued training is bitwise the longer one from scratch (tests/test_train.py), and
    its manifest's train_seconds counts both parts.
    """
    import shutil

    copied = []
    for model in SPACE_MODELS[space]:
        source = sorted((source_run / "models" / model / "checkpoints").glob("step_*"))
        target = run / "models" / model / "checkpoints"
        if not source or (target.is_dir() and any(target.iterdir())):
            continue  # nothing to continue from, or this arm has its own checkpoints already
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source[-1], target / source[-1].name)
        copied.append(model)
    return copied


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
    """Geometric mean over Euler steps of baseline FID / LeDiFlow FID at equal NFE, and the se of its log."""
    ratio = comparisons.quality_ratio(scores)
    cells = ratio[(ratio["solver"] == "euler") & (ratio["steps"] != "geomean") & ratio["steps"].str.isdigit()]
    if cells.empty:
        return math.nan, math.nan
    logs = np.log(cells["fid"].to_numpy(float))
    se_logs = (cells["fid_ci"].to_numpy(float) / Z95) / cells["fid"].to_numpy(float)  # delta method
    return float(np.exp(logs.mean())), float(np.sqrt((se_logs ** 2).sum()) / len(logs))


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
        dopri5, dopri5_log_se = _dopri5_ratio(by_space)
        floor_path = paths.data_floor_file(params)
        floor = tables.read_json(floor_path, "run `lediflow reference-features`") if floor_path.is_file() else {}
        rows.append({
            "run": run.name, "space": space, "scale": params["run"]["train_scale"], "seed": params["run"]["seed"],
            **training_compute(run, space),
            "baseline_best_fid": b_fid, "baseline_best_fid_se": b_se, "baseline_best_at": b_at,
            "ledi_best_fid": l_fid, "ledi_best_fid_se": l_se, "ledi_best_at": l_at,
            "speedup_nfe": float(euler["speedup_nfe"].iloc[0]) if not euler.empty else math.nan,
            "speedup_wall_clock": float(euler["speedup_wall_clock"].iloc[0]) if not euler.empty else math.nan,
            "speedup_bound": str(euler["speedup_bound"].iloc[0]) if not euler.empty else "",
            "fid_ratio": ratio, "fid_ratio_log_se": ratio_log_se,
            "dopri5_ratio": dopri5, "dopri5_ratio_log_se": dopri5_log_se,
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

def _interval(values: np.ndarray, single_se: float) -> tuple[float, float, str]:
    """(centre, 95% half-width, how): seeds -> mean and t-interval of the mean; one seed -> its bootstrap."""
    values = values[~np.isnan(values)]
    if len(values) >= 2:
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        return float(values.mean()), float(half), f"{len(values)} seeds"
    if len(values) == 1:
        return float(values[0]), Z95 * single_se if not math.isnan(single_se) else math.nan, "1 seed, bootstrap"
    return math.nan, math.nan, "no value"


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, scale): every metric's mean and std over seeds, its 95% interval, and whether the
    difference that matters (LeDiFlow vs baseline best FID; speedups and ratio vs 1) is resolved."""
    out = []
    for (space, scale), group in rows.groupby(["space", "scale"], sort=True):
        seeds = len(group)
        row: dict = {"space": space, "scale": scale, "seeds": seeds, "runs": " ".join(group["run"]),
                     # each run's hardware is already a " / " list (one device per training): merge the names
                     "hardware": " / ".join(sorted({h for hw in group["hardware"] for h in hw.split(" / ")}))}
        for column in ("ledi_train_seconds", "baseline_train_seconds", "ledi_flow_images", "baseline_flow_images"):
            row[column] = float(group[column].mean())
        single = group.iloc[0]
        ses = {"baseline_best_fid": single["baseline_best_fid_se"], "ledi_best_fid": single["ledi_best_fid_se"],
               "fid_ratio": single["fid_ratio"] * single["fid_ratio_log_se"],
               "dopri5_ratio": single["dopri5_ratio"] * single["dopri5_ratio_log_se"],
               "speedup_nfe": math.nan, "speedup_wall_clock": math.nan}
        for metric in METRICS:
            values = group[metric].to_numpy(float)
            centre, half, how = _interval(values, ses[metric] if seeds == 1 else math.nan)
            row[metric] = centre
            row[f"{metric}_std"] = float(values.std(ddof=1)) if seeds >= 2 else math.nan
            row[f"{metric}_ci"] = half
        row["interval"] = how
        # paired by seed: both flows of one run share its data order, reference and scorer
        gap = (group["baseline_best_fid"] - group["ledi_best_fid"]).to_numpy(float)
        gap_se = math.sqrt(single["baseline_best_fid_se"] ** 2 + single["ledi_best_fid_se"] ** 2)
        centre, half, _ = _interval(gap, gap_se if seeds == 1 else math.nan)
        row["best_fid_gap"], row["best_fid_gap_ci"] = centre, half
        row["best_fid_resolved"] = _resolved(centre, half, 0.0)
        bounds = set(group["speedup_bound"]) - {"=", ""}
        if seeds >= 2 and bounds == {">="}:
            # a t-interval over lower bounds means nothing: the lowest seed's value bounds every seed's speedup
            lowest = float(np.nanmin(group["speedup_nfe"].to_numpy(float)))
            row["speedup_nfe"], row["speedup_nfe_ci"] = lowest, math.nan
            row["speedup_nfe_resolved"] = "yes, every seed" if lowest > 1 else "not resolved"
        else:
            row["speedup_nfe_resolved"] = _resolved(row["speedup_nfe"] - 1, row["speedup_nfe_ci"], 0.0)
        row["bound"] = ", ".join(sorted(bounds))
        row["fid_ratio_resolved"] = _resolved(row["fid_ratio"] - 1, row["fid_ratio_ci"], 0.0)
        row["dopri5_ratio_resolved"] = _resolved(row["dopri5_ratio"] - 1, row["dopri5_ratio_ci"], 0.0)
        row["data_floor_fid"] = float(group["data_floor_fid"].mean())
        out.append(row)
    return pd.DataFrame(out)


def _resolved(centre: float, half: float, null: float) -> str:
    """'yes' when the 95% interval excludes the null, 'not resolved' when it does not, 'n/a' without one."""
    if math.isnan(centre) or math.isnan(half):
        return "n/a"
    return "yes" if abs(centre - null) > half else "not resolved"


def display(summary: pd.DataFrame) -> pd.DataFrame:
    """The Markdown/LaTeX table: value +- 95% per metric, 'not resolved' where the interval holds the null."""
    def pm(row: pd.Series, metric: str, digits: int) -> str:
        value, half = row[metric], row[f"{metric}_ci"]
        if math.isnan(value):
            return ""
        return f"{value:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")

    rows = []
    for _, r in summary.iterrows():
        rows.append({
            "space": r["space"], "scale": scale_label(r["scale"]), "seeds": r["seeds"],
            "LeDiFlow train s": f"{r['ledi_train_seconds']:.0f}",
            "baseline train s": f"{r['baseline_train_seconds']:.0f}", "flow images": f"{r['ledi_flow_images']:.0f}",
            "baseline best FID": pm(r, "baseline_best_fid", 1), "LeDiFlow best FID": pm(r, "ledi_best_fid", 1),
            "best FID gap": f"{r['best_fid_gap']:.1f} ({r['best_fid_resolved']})",
            "NFE speedup": (r["bound"] + " " if r["bound"] else "") + pm(r, "speedup_nfe", 1)
            + ("" if r["speedup_nfe_resolved"] == "n/a" else f" ({r['speedup_nfe_resolved']})"),
            "wall-clock speedup": pm(r, "speedup_wall_clock", 2),
            "FID ratio, equal NFE": pm(r, "fid_ratio", 2) + f" ({r['fid_ratio_resolved']})",
            "FID ratio, dopri5": pm(r, "dopri5_ratio", 2)
            + ("" if r["dopri5_ratio_resolved"] == "n/a" else f" ({r['dopri5_ratio_resolved']})"),
            "data floor": f"{r['data_floor_fid']:.1f}", "trained on": r["hardware"],
        })
    return pd.DataFrame(rows).set_index(["space", "scale"])


CAPTION = ("Scaling study: every network's training steps multiplied by the scale (run.train_scale; x1 is the "
           "default run), the Gaussian baseline at equal measured training compute at every scale. Per space and "
           "scale: best FID of each flow over the study's solver cells, the NFE and wall-clock speedup at matched "
           "FID (Euler; '>=' where the grid bounds it), the geometric-mean FID ratio baseline / LeDiFlow at "
           "equal Euler NFE, and the same ratio with both flows solved by dopri5 (its tightest tolerance). With "
           "several seeds (run.seed: initialisation, data order, sampling noise) each seed's values are "
           "computed first, then mean ± 95% t-interval of the mean over seeds; one seed: ± 95% bootstrap over "
           "its samples (speedups have none). Where a seed's NFE speedup is a lower bound ('>='), the seeds' "
           "row gives the lowest seed's value (a lower bound on every seed's), not a mean. 'not resolved': the "
           "interval holds no "
           "difference (gap 0, ratio 1). LeDiFlow train s: measured seconds of its whole pipeline in the space "
           "(autoencoder, prior, latent sampler, flow); baseline train s: the Gaussian flow's (and the "
           "autoencoder in latent space), which flow.baseline_extra_steps sets to about LeDiFlow's; flow images: "
           "images LeDiFlow's flow saw (the figures' x-axis: seconds compare only between arms trained on the same "
           "hardware, named in 'trained on' where the training records hold it).")


def write(runs: list[Path], out: Path) -> pd.DataFrame:
    """results/scaling/{scaling.md,csv,tex} (display), scaling_runs.csv (per run and space), scaling_steps.*
    (the change between budgets, paired by seed), the figures."""
    from lediflow import artifacts, figures, scaling_steps

    cells = common_cells(runs)
    rows = pd.DataFrame([row for run in runs for row in run_rows(run, cells)])
    if rows.empty:
        raise LediflowError("no run of the study has both flows of a space scored; finish the arms first")
    summary = summarise(rows)
    tables.write_table(display(summary), out, "scaling", CAPTION)
    artifacts.write_text_atomic(out / "scaling_runs.csv", rows.to_csv(index=False, float_format="%.6g"))
    artifacts.write_text_atomic(out / "scaling_summary.csv", summary.to_csv(index=False, float_format="%.6g"))
    changes = scaling_steps.steps(rows)
    if not changes.empty:
        tables.write_table(scaling_steps.display(changes, scale_label), out, "scaling_steps", scaling_steps.CAPTION)
    figures.scaling(summary, out)
    return summary
