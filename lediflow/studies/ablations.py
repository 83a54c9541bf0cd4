"""Cross-run ablation tables: one row per arm (a whole run), columns per solver setting.

An ablation study is a list of runs that differ in one switch (prior loss, latent
sampler, prior std scale). Each arm is an ordinary run (results/<run>/); this
module reads their score files, prior reports and resolved params and lines them
up. The 'differs' column is computed from the resolved params, so a table can
never claim a switch the runs did not actually differ in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lediflow.pipeline import paths

from lediflow.analysis import tables
from lediflow.pipeline.config import load_params, read_yaml
from lediflow.core.errors import LediflowError

# Keys that name a run rather than configure it: never an ablation switch.
IGNORED_KEYS = ("run.name",)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def differing_keys(params: list[dict]) -> list[str]:
    """The dotted keys whose value is not the same in every run."""
    flats = [flatten(p) for p in params]
    keys = sorted(set().union(*flats))
    return [k for k in keys if k not in IGNORED_KEYS and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


# What an arm is judged by: every cell of its sweep, or only the learned prior's zero-step cells
# (prior-only studies train no flow).
CELLS = {"tables": paths.cells, "prior": paths.zero_step_cells, "scores": paths.cells}


def _read_run(run: Path, cells: str = "tables") -> tuple[dict, pd.DataFrame, dict]:
    params_file = run / "params.yaml"
    if not params_file.is_file():
        raise LediflowError(f"{run} is not a finished run (no params.yaml); run its config with snakemake first")
    # Defaults filled in: an arm written before a key existed must not 'differ' from one written after.
    resolved = load_params([str(params_file)])
    scores = tables.load_cells(run, CELLS[cells](resolved))
    report_file = run / "prior_report" / "pixel" / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    return resolved, scores, report


def training_compute(run: Path) -> dict[str, float]:
    """Optimiser steps and measured training seconds of the run's flows (NaN where no record is here). Copies
    the records of models that are here to the run's training/ first, so a study made in a fresh clone (arms'
    models are not committed) reports the same seconds."""
    tables.sync_training_records(run)
    flows = sorted(p.stem for p in (run / "training").glob("flow-*.json"))
    records = [tables.training_record(run, flow) for flow in flows]
    nan = float("nan")
    return {"flow_steps": sum(r.get("step", nan) for r in records) if records else nan,
            "flow_train_seconds": sum(r.get("train_seconds", nan) for r in records) if records else nan}


def best_cell(scores: pd.DataFrame) -> str:
    """'FID +- 95% (setting)' of the arm's best solver cell (zero-step cells are not a flow's result)."""
    row = tables.best_solver_cell(scores)
    if row is None:
        return ""
    return f"{tables.plus_minus(row['fid'], row['fid_se'], 1)} ({row['space']} {row['setting']})"


def difference_to_first(long: pd.DataFrame, replicates: dict[tuple[str, str, str], list | None],
                        seeds: dict[str, int]) -> pd.DataFrame:
    """Each cell's FID minus the first arm's at the same cell, with its 95% half-width.

    Arms of one seed and sample count drew their bootstrap with the same resample indices over images made from
    the same per-image noise, so replicate j of both is one resample: the difference is bootstrapped jointly
    (the spread of the replicate differences). Otherwise the two intervals are combined as independent.
    """
    first = long["arm"].iloc[0]
    base = long[long["arm"] == first].set_index(["space", "setting"])
    diffs, halves, hows = [], [], []
    for row in long.itertuples():
        ref = base.loc[(row.space, row.setting)]
        mine, theirs = replicates.get((row.arm, row.space, row.setting)), replicates.get((first, row.space,
                                                                                           row.setting))
        joint = (mine is not None and theirs is not None and len(mine) == len(theirs) > 1
                 and row.num_samples == ref["num_samples"] and seeds[row.arm] == seeds[first])
        diffs.append(row.fid - ref["fid"])
        if row.arm == first:
            halves.append(0.0)
            hows.append("")
        elif joint:
            halves.append(tables.Z95 * float(np.std(np.subtract(mine, theirs), ddof=1)))
            hows.append("joint bootstrap")
        else:
            halves.append(tables.Z95 * float(np.hypot(row.fid_se, ref["fid_se"])))
            hows.append("independent")
    return long.assign(fid_minus_first=diffs, fid_minus_first_ci=halves, fid_minus_first_how=hows)


def compare_runs(runs: list[Path], cells: str = "tables") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long, wide): long has one row per arm x scored cell; wide one row per arm, 'FID / KID' per setting."""
    if len(runs) < 2:
        raise LediflowError("an ablation needs at least two runs to compare; pass --runs DIR DIR [...]")
    loaded = [_read_run(Path(r), cells) for r in runs]
    keys = differing_keys([p for p, _, _ in loaded])
    long_rows, wide_rows, replicates = [], [], {}
    for run, (params, scores, report) in zip(runs, loaded):
        flat = flatten(params)
        differs = ", ".join(f"{k}={flat.get(k)}" for k in keys) or "(identical params)"
        arm = {"arm": Path(run).name, "differs": differs,
               # docs/method.md 3: the learned prior's point is a short path; ||x0 - x1||^2 per pixel measures it.
               "mse_paired_x0": report.get("mse_paired_x0"), "gaussian_over_paired": report.get("gaussian_over_paired")}
        if "sampler_fid" in report:  # the latent sampler on its own (prior reports since the prior-design study)
            arm["sampler_fid"] = report["sampler_fid"]
        if cells == "scores":  # single-prior studies at equal training time: what each arm spent, and its best
            arm.update(training_compute(Path(run)))
        learned = scores[scores["prior"] == "learned"]
        if learned.empty:
            learned = scores
        wide = dict(arm)
        if cells == "scores":
            wide["best_fid"] = best_cell(learned)
        for _, row in learned.iterrows():
            replicates[(Path(run).name, row["space"], row["setting"])] = row.get("fid_replicates")
            long_rows.append({**arm, "prior": row["prior"], "space": row["space"], "setting": row["setting"],
                              "nfe": row["nfe"], "fid": row["fid"], "kid_mean": row["kid_mean"],
                              "fid_se": row["fid_se"], "kid_se": row["kid_se"], "mmd_inception": row["mmd_inception"],
                              "num_samples": row["num_samples"]})
            wide[f"{row['space']} {row['setting']}"] = (
                tables.plus_minus(row["fid"], row["fid_se"], 1) if cells == "scores"
                else f"{row['fid']:.2f} / {row['kid_mean']:.4f}")
        wide_rows.append(wide)
    long = pd.DataFrame(long_rows)
    counts = long.groupby("arm")["setting"].apply(frozenset)
    if counts.nunique() > 1:
        raise LediflowError("the runs were scored at different solver settings, so their cells do not line up; "
                            "give every arm the same sample.* section (configs/ablations/budget.yaml)")
    if cells == "scores":  # each arm against the first, cell by cell, with the interval of the difference
        long = difference_to_first(long, replicates, {Path(r).name: p["run"]["seed"] for r, (p, _, _) in
                                                      zip(runs, loaded)})
    # Gaussian-only arms have no prior report: leave its columns out rather than print them empty.
    return long, pd.DataFrame(wide_rows).set_index("arm").dropna(axis=1, how="all")


CAPTION = ("Ablation {study}: one run per arm at the same budget, learned prior, pixel space. Cells: FID / KID "
           "(lower is better) per solver setting. mse_paired_x0: mean squared distance per pixel between the data "
           "and its paired prior sample (the ODE's path length); gaussian_over_paired: the Gaussian coupling's "
           "distance over it. 'differs' lists the resolved params that are not equal across the arms.")


PRIOR_CAPTION = (" Prior-only study: no flow is trained; the cells are the learned prior's own samples at NFE 0, "
                 "prior-x0 (x0 = mu_D(z) + s sigma_D(z) eps) and prior-mean (mu_D(z)), z from the latent sampler; "
                 "sampler_fid: FID of mu_D(z) with z from the latent sampler against mu_D(z) with z from test "
                 "posteriors (the sampler alone).")


SCORES_CAPTION = ("Study {study}: one run per arm, each training only the flows its flow.priors names, in the space "
                  "each cell names. Cells: FID +- 95% bootstrap half-width (lower is better) per solver setting; "
                  "'differs' lists the resolved params that are not equal across the arms. flow_steps and "
                  "flow_train_seconds are each arm's optimiser steps and measured training seconds (training "
                  "records), the budget the study gave it (equal steps, or equal wall time where its arm files "
                  "say so); best_fid is the arm's lowest FID over its solver cells, NFE-0 prior cells excluded. "
                  "<study>_long.csv adds each cell's FID minus the first arm's, with the 95% half-width of the "
                  "difference (a joint bootstrap where the arms share seed and sample count).")


def write_study(study: str, runs: list[Path], out_dir: Path, cells: str = "tables") -> pd.DataFrame:
    """Write <out>/<study>.{md,csv,tex} (wide) and <study>_long.csv."""
    from lediflow.core import artifacts

    long, wide = compare_runs(runs, cells)
    if cells == "scores":
        caption = SCORES_CAPTION.format(study=study)
    else:
        caption = CAPTION.format(study=study) + (PRIOR_CAPTION if cells == "prior" else "")
    tables.write_table(wide, Path(out_dir), study, caption)
    artifacts.write_text_atomic(Path(out_dir) / f"{study}_long.csv", long.to_csv(index=False, float_format="%.6g"))
    return wide


def load_studies(path: str | Path) -> dict:
    """Read and check a studies file (configs/ablations/studies.yaml); one-line errors name the fix."""
    path = Path(path)
    if not path.is_file():
        raise LediflowError(f"no studies file at {path}; pass --config studies=<file> (see configs/ablations/studies.yaml)")
    spec = read_yaml(path)
    for key in ("budget", "arms_dir", "out", "studies"):
        if key not in spec:
            raise LediflowError(f"{path} lacks '{key}'; see configs/ablations/studies.yaml for the shape")
    spec.setdefault("target", "tables")
    if spec["target"] not in CELLS:
        raise LediflowError(f"{path}: target {spec['target']!r} is not one of {', '.join(CELLS)} (what each arm runs)")
    if not Path(spec["budget"]).is_file():
        raise LediflowError(f"{path}: budget file {spec['budget']} does not exist")
    arms = {}
    for study, names in spec["studies"].items():
        if not isinstance(names, list) or len(names) < 2:
            raise LediflowError(f"{path}: study '{study}' needs a list of at least two arms")
        for arm in names:
            arm_file = Path(spec["arms_dir"]) / f"{arm}.yaml"
            if not arm_file.is_file():
                raise LediflowError(f"{path}: study '{study}' names arm '{arm}' but {arm_file} does not exist")
            run_name = (read_yaml(arm_file).get("run") or {}).get("name")
            if run_name != f"ablation-{arm}":
                raise LediflowError(f"{arm_file}: run.name must be 'ablation-{arm}' (it is {run_name!r}), "
                                    "so every arm writes its own results/ folder")
            arms[arm] = str(arm_file)
    return {**spec, "arm_files": arms}
