"""Precision and recall over seeds at each flow's best cell: is LeDiFlow's lead fidelity or diversity, beyond one seed?

Seed 0 is a run scored with precision/recall in every cell (the default run). The other seeds are runs made before
precision/recall was scored; each is re-made under its own name (an ordinary run of the main Snakefile with the
same params) at the two cells the scaling study compares, each flow's best, read from the study's runs table.
Precision and recall follow Kynkaanniemi et al. (2019), k = 3, on the scorer's Inception features (docs/tables.md);
across seeds each is a mean with its t-interval, and LeDiFlow minus the baseline is paired by seed.

    lediflow seed-quality --study configs/seeds/study.yaml
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from lediflow.analysis import significance, tables
from lediflow.core.errors import LediflowError
from lediflow.pipeline.config import Params, load_params

METHODS = {"gaussian": "FM baseline (Gaussian)", "learned": "LeDiFlow (learned prior)"}
SPEC_KEYS = ("configs", "runs_table", "out", "seed0", "arms")
# what a re-made arm may differ in from the arm it re-makes: its name, and keys added to the schema since (with
# their defaults, which load_params fills on both sides)
RENAMED = ("name",)


def load_spec(path: str | Path) -> dict:
    """The study file: base configs, the scaling study's runs table, the seed-0 run and the re-made arms."""
    path = Path(path)
    if not path.is_file():
        raise LediflowError(f"study file {path} not found; pass --study configs/seeds/study.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        raise LediflowError(f"study file {path} lacks {', '.join(missing)}; see configs/seeds/study.yaml")
    for arm in spec["arms"]:
        if not {"config", "remakes"} <= set(arm):
            raise LediflowError(f"study file {path}: every arm needs config and remakes, got {arm}")
    return spec


def results_dir(spec: dict) -> Path:
    return Path(load_params(spec["configs"])["run"]["results_dir"])


def arm_params(spec: dict, arm: dict) -> Params:
    return load_params([*spec["configs"], arm["config"]])


def check_remake(spec: dict, arm: dict) -> str:
    """The arm's run name, after checking its params are those of the run it re-makes (bar the name)."""
    params = arm_params(spec, arm)
    original = results_dir(spec) / arm["remakes"] / "params.yaml"
    if not original.is_file():
        raise LediflowError(f"{arm['config']} re-makes {arm['remakes']}, but {original} is missing; "
                            "name a committed run in the study file's remakes")
    made = load_params([original])
    for section in sorted(set(params) | set(made)):
        ours, theirs = params.get(section), made.get(section)
        if section == "run":
            ours = {k: v for k, v in ours.items() if k not in RENAMED}
            theirs = {k: v for k, v in theirs.items() if k not in RENAMED}
        if ours != theirs:
            raise LediflowError(f"{arm['config']} does not re-make {arm['remakes']}: their {section} sections "
                                "differ; copy that run's params into the arm's overlay")
    return params["run"]["name"]


def best_cells(runs_table: pd.DataFrame, run: str) -> list[tuple[str, str, str]]:
    """(space, model, setting) of each flow's best cell in the study's runs table (baseline_best_at, ledi_best_at)."""
    rows = runs_table[runs_table["run"] == run]
    if rows.empty:
        raise LediflowError(f"{run} is not in the scaling study's runs table; re-make an arm the study holds")
    cells = []
    for _, row in rows.iterrows():
        cells.append((row["space"], f"flow-{row['space']}-gaussian", row["baseline_best_at"]))
        cells.append((row["space"], f"flow-{row['space']}-learned", row["ledi_best_at"]))
    return cells


def read_runs_table(spec: dict) -> pd.DataFrame:
    path = Path(spec["runs_table"])
    if not path.is_file():
        raise LediflowError(f"{path} is missing; make the scaling study's tables first (lediflow scaling)")
    return pd.read_csv(path)


def targets(spec: dict) -> dict[str, list[str]]:
    """Per re-made arm's run name: the score files of its best cells (what its run must make)."""
    runs_table, out = read_runs_table(spec), {}
    for arm in spec["arms"]:
        name = check_remake(spec, arm)
        out[name] = [str(results_dir(spec) / name / "scores" / model / f"{setting}.json")
                     for _, model, setting in best_cells(runs_table, arm["remakes"])]
    return out


def cells(spec: dict) -> tuple[pd.DataFrame, list[str]]:
    """One row per (run, best cell) of every run whose best cells are all scored, and the runs not yet made."""
    runs_table, root = read_runs_table(spec), results_dir(spec)
    runs = [(spec["seed0"], spec["seed0"])] + [(check_remake(spec, arm), arm["remakes"]) for arm in spec["arms"]]
    rows, missing = [], []
    for run, original in runs:
        best = best_cells(runs_table, original)
        if not all((root / run / "scores" / model / f"{setting}.json").is_file() for _, model, setting in best):
            missing.append(run)
            continue
        seed = load_params([root / run / "params.yaml"])["run"]["seed"]
        scored = tables.load_cells(root / run, [(model, setting) for _, model, setting in best])
        for _, cell in scored.iterrows():
            made = runs_table[(runs_table["run"] == original) & (runs_table["space"] == cell["space"])].iloc[0]
            side = "baseline" if cell["prior"] == "gaussian" else "ledi"
            rows.append({"space": cell["space"], "method": METHODS[cell["prior"]], "prior": cell["prior"],
                         "seed": seed, "run": run, "remakes": original, "cell": cell["setting"],
                         "fid": cell["fid"], "fid_se": cell["fid_se"],
                         "study_fid": made[f"{side}_best_fid"], "study_fid_se": made[f"{side}_best_fid_se"],
                         "precision": cell["precision"], "recall": cell["recall"]})
    return pd.DataFrame(rows), missing


def _pm(values: pd.Series) -> tuple[float, float, str]:
    # t over seeds; one seed has no interval for precision/recall (the score files keep no replicates of them)
    centre, half, how = significance.interval(values.to_numpy(dtype=float), math.nan)
    return centre, half, "1 seed" if how.startswith("1 seed") else how


def summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per space and method: precision and recall over seeds (mean and 95% t-interval), and per space LeDiFlow
    minus the baseline, paired by seed."""
    rows = []
    for space, group in long.groupby("space", sort=False):
        for prior in METHODS:
            own = group[group["prior"] == prior].sort_values("seed")
            p, p_half, how = _pm(own["precision"])
            r, r_half, _ = _pm(own["recall"])
            rows.append({"space": space, "row": METHODS[prior], "seeds": how,
                         "cells": ", ".join(own["cell"]), "precision": p, "precision ci": p_half,
                         "recall": r, "recall ci": r_half})
        both = group.pivot_table(index="seed", columns="prior", values=["precision", "recall"])
        both = both.dropna()
        dp, dp_half, how = _pm(both["precision"]["learned"] - both["precision"]["gaussian"])
        dr, dr_half, _ = _pm(both["recall"]["learned"] - both["recall"]["gaussian"])
        rows.append({"space": space, "row": "LeDiFlow - baseline (paired by seed)", "seeds": how, "cells": "",
                     "precision": dp, "precision ci": dp_half, "recall": dr, "recall ci": dr_half,
                     "precision resolved": significance.resolved(dp, dp_half, 0.0),
                     "recall resolved": significance.resolved(dr, dr_half, 0.0)})
    return pd.DataFrame(rows)


def _shown(value: float, half: float, signed: bool) -> str:
    """`mean ± half` to three places; a difference carries its sign, one seed shows no interval."""
    if math.isnan(value):
        return ""
    centre = f"{value:+.3f}" if signed else f"{value:.3f}"
    return centre if math.isnan(half) else f"{centre} ± {half:.3f}"


def display(frame: pd.DataFrame) -> pd.DataFrame:
    shown = []
    for _, r in frame.iterrows():
        difference = r["row"].startswith("LeDiFlow -")
        shown.append({"space": r["space"], "": r["row"], "seeds": r["seeds"], "best cells": r["cells"],
                      "precision": _shown(r["precision"], r["precision ci"], difference),
                      "recall": _shown(r["recall"], r["recall ci"], difference),
                      "resolved (P / R)": f"{r['precision resolved']} / {r['recall resolved']}" if difference else ""})
    return pd.DataFrame(shown)


def write(spec: dict) -> tuple[pd.DataFrame, list[str]]:
    """results/seeds/seeds.{md,csv,tex} (the summary) and seeds_long.csv (every run's best cells)."""
    long, missing = cells(spec)
    if long.empty:
        raise LediflowError("no run of the study has its best cells scored yet; run "
                            "`snakemake -s workflow/seeds.smk --cores all`")
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    frame = summary(long)
    not_made = f" Not yet made: {', '.join(missing)}." if missing else ""
    caption = ("Precision and recall (Kynkaenniemi et al. 2019, k = 3, Inception features) at each flow's best cell "
               "of the scaling study (results/scaling/scaling_runs.csv), over the seeds whose runs are scored: mean "
               "and 95% t-interval over seeds; a single seed has no interval. The last row of a space is LeDiFlow "
               "minus the baseline, paired by seed; resolved when its interval excludes 0 (per comparison). "
               f"Every run's cells, with each cell's FID beside the study's: seeds_long.csv.{not_made}")
    tables.write_table(display(frame), out, "seeds", caption)
    from lediflow.core import artifacts

    artifacts.write_text_atomic(out / "seeds_long.csv", long.to_csv(index=False, float_format="%.6g"))
    return frame, missing

