"""Reading a run's cells into one frame, and writing tables (Markdown, CSV, LaTeX).

The definitions the tables compute (matched-quality speedup, ratios at equal
NFE and equal cost) live in lediflow/analysis/comparisons.py; this module only loads
and formats. A run's cells are exactly those its resolved params name
(paths.cells): a score file left on disk by an earlier sweep is never read.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd

from lediflow.core import artifacts

from lediflow.method.names import ZERO_STEP_SETTINGS
from lediflow.core.errors import LediflowError

PAPER_HEADLINES = {
    "pixel": "inference up to 3.75x faster than the pixel-space FM baseline",
    "latent": "CMMD 1.32x better on average than the latent FM baseline",
}
METRICS = ("fid", "kid_mean", "cmmd", "mmd_inception")
Z95 = 1.959964  # two-sided 95% normal quantile: interval = value +- Z95 * se


def read_json(path: Path, rebuild: str) -> dict:
    """A result file the tables read (score, timing, floor), checked against the checksum it was written with;
    missing -> one line naming `rebuild`, damaged or edited -> moved aside for one."""
    return artifacts.read_sealed_json(path, rebuild)


def _timings(run: Path, space: str) -> dict:
    """model -> setting -> timing entry from results/<run>/timing/<space>.json ({} when the run has none)."""
    path = run / "timing" / f"{space}.json"
    return read_json(path, "run `snakemake --cores all` (rule time_cells)")["cells"] if path.is_file() else {}


def _number(value: object) -> float:
    """A metric that may be absent or a string such as 'unavailable (no CLIP weights)' -> float or NaN."""
    return float(value) if isinstance(value, (int, float)) else math.nan


def load_cells(run: Path, cells: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per (model, setting) of `cells`, read from run/scores (and run/timing where present)."""
    rows, timings = [], {}
    for model, setting in cells:
        score = read_json(run / "scores" / model / f"{setting}.json",
                           f"run `snakemake --cores all` (or `lediflow score --model {model} --setting {setting}`)")
        sampling = score["sampling"]
        space = sampling["space"]
        if space not in timings:
            timings[space] = _timings(run, space)
        timed = timings[space].get(model, {}).get(setting)
        second = score.get("second_reference", {})
        rows.append({
            "space": space, "prior": sampling["prior"], "solver": sampling["solver"],
            "steps": sampling["steps"], "tol": sampling["tol"], "setting": setting,
            "nfe": sampling["nfe"], "latent_sampler_nfe": sampling["latent_sampler_nfe"],
            # The repeated, interleaved timing where the run has one; else the sample stage's single timing.
            "ms_per_image": timed["median_ms_per_image"] if timed else 1000 * sampling["seconds_per_image"]["total"],
            "ms_repeats": len(timed["repeats"]) if timed else 1,
            "fid": score["fid"], "fid_se": _number(score.get("fid_se")),
            "kid_mean": score["kid_mean"], "kid_se": _number(score.get("kid_se")),
            "cmmd": _number(score["cmmd"]), "mmd_inception": score["mmd_inception"],
            # precision/recall and replicates exist in score files made since 2026-12-07: NaN / None before
            "precision": _number(score.get("precision")), "recall": _number(score.get("recall")),
            "num_samples": score["num_samples"],
            "second_reference": second.get("split", ""),
            "fid_second": _number(second.get("fid")), "fid_second_se": _number(second.get("fid_se")),
            "kid_second": _number(second.get("kid_mean")), "kid_second_se": _number(second.get("kid_se")),
            "fid_replicates": score.get("fid_replicates"), "kid_replicates": score.get("kid_replicates"),
            "fid_second_replicates": second.get("fid_replicates"), "kid_second_replicates": second.get("kid_replicates"),
        })
    if not rows:
        raise LediflowError(f"the params of {run} name no cells (empty sweep); add sample.steps or dopri5 tolerances")
    return pd.DataFrame(rows).sort_values(["space", "prior", "solver", "nfe"]).reset_index(drop=True)


def code_states(run: Path, cells: list[tuple[str, str]]) -> list[dict | None]:
    """The code state (lediflow.core.provenance) each cell's score file records; None where it has none."""
    return [read_json(run / "scores" / model / f"{setting}.json", "").get("code") for model, setting in cells]


def on_second_reference(scores: pd.DataFrame) -> pd.DataFrame:
    """The same cells with the second reference's FID/KID in the fid/kid columns (for the same tables)."""
    frame = scores.copy()
    for metric, second in (("fid", "fid_second"), ("fid_se", "fid_second_se"), ("kid_mean", "kid_second"),
                           ("kid_se", "kid_second_se"), ("fid_replicates", "fid_second_replicates"),
                           ("kid_replicates", "kid_second_replicates")):
        frame[metric] = frame[second]
    for metric in ("cmmd", "mmd_inception", "precision", "recall"):
        frame[metric] = math.nan
    return frame


REPLICATE_COLUMNS = ("fid_replicates", "kid_replicates", "fid_second_replicates", "kid_second_replicates")


def long_format(scores: pd.DataFrame) -> str:
    """scores_long.csv: one row per cell, every scalar column (the bootstrap replicates stay in the score files)."""
    return scores.drop(columns=[c for c in REPLICATE_COLUMNS if c in scores]).to_csv(index=False, float_format="%.6g")


def value_half(value: float | None, half: float | None, digits: int, signed: bool = False) -> str:
    """'value ± half' (a 95% half-width already), the value alone without one, '' without a value: the one
    way every study table prints an interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text + ("" if half is None or math.isnan(half) else f" ± {half:.{digits}f}")


def plus_minus(value: float, se: float, digits: int) -> str:
    """'value +- 1.96 se' (the 95% interval), or the value alone when no error bar exists."""
    if math.isnan(se):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {Z95 * se:.{digits}f}"


WALL_CLOCK_KEYS = frozenset({"images_per_s", "train_seconds", "resumed_from"})  # how fast, not what was computed


def _computation(path: Path) -> list[dict]:
    """The rows of a training log (or the one record of a summary) without their wall-clock fields."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK_KEYS} for row in rows]


def same_training(log: Path, record: Path) -> bool:
    """Whether the committed training log `record` describes the same computation as the model's `log`: every
    logged step, loss, learning rate and gradient norm equal, bit for bit."""
    try:
        return record.is_file() and _computation(log) == _computation(record)
    except (OSError, ValueError):
        return False


def sync_training_records(run: Path) -> list[Path]:
    """Copy each trained model's metrics.jsonl and its manifest's training record (steps, images seen, measured
    seconds) from results/<run>/models/ (DVC outputs, or ignored in study arms) to results/<run>/training/, which
    git keeps: a fresh clone's tables then still know what each model cost.

    A model re-made step for step (`same_training`) keeps the record already there: its seconds measure the same
    computation, and a re-make on a busy machine must not replace an idle machine's measurement. Any other
    difference replaces the record."""
    copied = []
    for model in sorted(p for p in (run / "models").glob("*") if p.is_dir()):
        log, target = model / "metrics.jsonl", run / "training" / f"{model.name}.jsonl"
        summary = target.with_suffix(".json")
        if log.is_file() and summary.is_file() and same_training(log, target):
            copied += [target, summary]
            continue
        if log.is_file():
            if not target.is_file() or target.read_bytes() != log.read_bytes():
                with artifacts.atomic_path(target) as tmp:
                    shutil.copyfile(log, tmp)
            copied.append(target)
        manifest = model / "manifest.json"
        if manifest.is_file() and "training" in (record := artifacts.read_json(manifest)):
            artifacts.write_json_atomic(summary, {"model": model.name, **record["training"]})
            copied.append(summary)
    return copied


def training_record(run: Path, model: str) -> dict:
    """A model's training record: the committed copy the tables stage writes (results/<run>/training/<model>.json),
    else the model's own manifest; {} when neither is here (models are DVC outputs)."""
    for path in (run / "training" / f"{model}.json", run / "models" / model / "manifest.json"):
        if path.is_file():
            record = artifacts.read_json(path)
            return record.get("training", {}) if path.name == "manifest.json" else record
    return {}


def best_solver_cell(scores: pd.DataFrame) -> pd.Series | None:
    """The lowest-FID cell that ran a solver: the NFE-0 prior cells are the prior's result, not a flow's."""
    solved = scores[~scores["setting"].isin(ZERO_STEP_SETTINGS)]
    return None if solved.empty else solved.loc[solved["fid"].idxmin()]


def budget_label(steps: float, tol: float) -> str:
    """'8 steps', 'tol 1e-05', or '0 steps' for the zero-step prior cells (the NFE-0 column)."""
    return f"{int(steps)} steps" if not pd.isna(steps) else f"tol {tol:g}"


def quality_vs_nfe(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows space, prior, solver (plain columns); columns the step counts (dopri5: its tolerance).

    Cells: FID ± 95% / KID ± 95% [/ CMMD] (NFE, ms per image).
    """
    frame = scores.copy()
    frame["budget"] = [budget_label(s, t) for s, t in zip(frame["steps"], frame["tol"])]

    def cell(row: pd.Series) -> str:
        cmmd = "" if pd.isna(row["cmmd"]) else f" / CMMD {row['cmmd']:.3f}"
        if not pd.isna(row.get("precision", math.nan)):
            cmmd += f" / P {row['precision']:.2f}, R {row['recall']:.2f}"
        return (f"{plus_minus(row['fid'], row['fid_se'], 1)} / {plus_minus(row['kid_mean'], row['kid_se'], 4)}{cmmd} "
                f"(NFE {row['nfe']:g}, {row['ms_per_image']:.2f} ms)")

    frame["cell"] = frame.apply(cell, axis=1)
    table = frame.pivot_table(index=["space", "prior", "solver"], columns="budget", values="cell", aggfunc="first")
    order = sorted(table.columns, key=lambda c: (c.startswith("tol"), float(c.split()[0 if not c.startswith("tol") else 1])))
    table = table[order].fillna("")
    table.columns.name = None
    return table.reset_index()


def data_floor_table(floor: dict, autoencoder: dict | None = None) -> pd.DataFrame:
    """Real images of the second split scored against the primary reference (and, for latent runs, the
    autoencoder's reconstructions of the same images: the latent flows' own floor)."""
    rows = [(f"{floor['num_samples']} {floor['split']} images", floor)]
    if autoencoder is not None:
        rows.append((f"{autoencoder['num_samples']} {autoencoder['split']} images, autoencoder reconstructions",
                     autoencoder))
    return pd.DataFrame([{"images": label, "fid": f["fid"], "fid_ci": Z95 * f["fid_se"], "kid_mean": f["kid_mean"],
                          "kid_ci": Z95 * f["kid_se"], "mmd_inception": f["mmd_inception"],
                          "num_reference": f["num_reference"]} for label, f in rows])


def write_table(frame: pd.DataFrame, folder: Path, name: str, caption: str) -> list[Path]:
    """Markdown (with the caption), CSV and LaTeX of one table."""
    from lediflow.core import artifacts

    out = []
    index = not isinstance(frame.index, pd.RangeIndex)
    md = f"**{name}.** {caption}\n\n" + frame.to_markdown(index=index, floatfmt=".4g") + "\n"
    for suffix, text in ((".md", md), (".csv", frame.to_csv(index=index, float_format="%.6g")),
                         (".tex", frame.to_latex(index=index, float_format="%.4g", caption=caption, label=f"tab:{name}"))):
        path = folder / f"{name}{suffix}"
        artifacts.write_text_atomic(path, text)
        out.append(path)
    return out
