"""What the scaling study will cost on this machine, estimated from the default run's measured jobs.

Training: each network's recorded seconds in the default run (results/<run>/training/<model>.json) times the
arm's scale; a network that continues the next smaller arm of its seed (scaling.seed_checkpoints) pays only the
difference of the scales, where that arm will leave a checkpoint: it runs first in the same checkout, or it
finished here and its checkpoints are still on disk (a fresh clone has the finished arms' tables but no
checkpoints, and there a larger arm trains afresh). An arm that loads the study's fixed autoencoder trains none;
the first of them pays for making it again where its finished source arm no longer holds it. Finished arms cost
nothing and are left out (--whole prices them too: the whole study's cost). Evaluation:
the default run's per-job benchmarks (results/<run>/benchmarks/*.tsv) of the cells the arm scores, score jobs
halved because Snakemake runs two of them at once on two cores, plus the per-space stages (latent encoding,
prior report, timing, autoencoder floor) and the per-run ones (reference features, tables) once per arm. The
default run itself costs nothing more: it is the x1 seed-0 arm.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from lediflow.pipeline import paths

from lediflow.studies import scaling

from lediflow.analysis import tables
from lediflow.pipeline.config import deep_merge, load_params, validate
from lediflow.core.errors import LediflowError

SCORE_JOBS_AT_ONCE = 2  # score rules take one thread each; the 2-core machine runs two side by side
SPACE_STAGES = {"pixel": ("prior_report-pixel", "time_cells-pixel"),
                "latent": ("encode_latents", "autoencoder_floor", "prior_report-latent", "time_cells-latent")}
RUN_STAGES = ("reference_features", "tables")
COLUMNS = ("arm", "spaces", "scale", "seed", "cells", "train_s", "sample_s", "score_s", "other_s", "hours")


def benchmark_seconds(run: Path, job: str) -> float:
    """Wall seconds of one job of a finished run, from Snakemake's benchmark file."""
    path = run / "benchmarks" / f"{job}.tsv"
    if not path.is_file():
        raise LediflowError(f"no benchmark {path}; finish the default run (`snakemake --cores all`) before "
                            "estimating the study from it")
    with path.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return float(rows[-1]["s"])


def training_seconds(run: Path, model: str) -> float:
    seconds = tables.training_record(run, model).get("train_seconds", math.nan)
    if math.isnan(seconds):
        raise LediflowError(f"{run} has no training record of {model}; run its tables stage (`snakemake --cores "
                            "all`) so results/<run>/training/ holds every model's seconds")
    return float(seconds)


def priced_as(model: str) -> str:
    """The default run's record that prices a network: its own, or for OT-CFM (which the default run does not
    train) the Gaussian flow's, the same network and steps; the exact minibatch OT plan adds 1-2 ms a step at
    batch 64 on this CPU (docs/studies.md, "OT-CFM beside the two flows")."""
    return model[: -len("-ot")] + "-gaussian" if model.startswith("flow-") and model.endswith("-ot") else model


def arm_params(spec: dict, arm: scaling.Arm) -> dict:
    """The arm's validated params: base configs, the study budget, then the arm's overlay."""
    return validate(deep_merge(load_params([*spec["configs"], spec["budget"]]), arm.overlay()))


def estimate(spec: dict, default_run: Path, alone: bool = False, fresh_clone: bool = False,
             whole: bool = False) -> pd.DataFrame:
    """One row per arm still to run: training, sampling, scoring and other seconds, and hours in all. alone:
    each arm in a checkout of its own (a fresh clone per arm), so it continues nothing. fresh_clone: the
    checkpoints finished arms left in this checkout are ignored, as a fresh clone of the commit has none, so
    the committed estimate does not depend on which session made it. whole: every arm, finished or not, as
    the whole study costs in one checkout where none has run (each smaller arm runs first and is continued),
    so a finished study still states its price."""
    base = load_params(spec["configs"])
    results = Path(base["run"]["results_dir"])
    planned = scaling.arms(spec, base["run"]["name"], results)
    by_name = {arm.name: arm for arm in planned}
    previous = scaling.predecessors(planned)
    fixed = scaling.fixed_autoencoder_arm(spec, planned)
    # the fixed autoencoder, where a finished source arm no longer holds it (a fresh clone never does), is made
    # again once, by the first arm that loads it
    fixed_missing = fixed is not None and scaling.finished(results / fixed.name) and (
        fresh_clone or not scaling.autoencoder_manifest(results, fixed.name).is_file())

    def continued_scale(arm: scaling.Arm, space: str, model: str) -> float:
        """The scale a network starts from: its smaller arm's, when that arm will leave a checkpoint of it."""
        source = previous.get(arm.name, {}).get(space)
        if alone or source is None or not scaling.continues(model, arm, by_name[source], results):
            return 0.0
        run = results / source
        kept = scaling.has_checkpoint(run, model) and not fresh_clone
        return by_name[source].scale if whole or not scaling.finished(run) or kept else 0.0

    rows = []
    for arm in planned:
        if arm.default or (scaling.finished(results / arm.name) and not whole):
            continue
        cells = paths.cells(arm_params(spec, arm))
        train = other = 0.0
        if arm.autoencoder is not None and (alone or fixed_missing and not whole):
            # alone, each arm's own clone makes the fixed autoencoder again
            train += training_seconds(default_run, "autoencoder") * fixed.scale
            fixed_missing = False
        for space in arm.spaces:
            for model in scaling.trains(arm, space):
                steps = arm.scale - continued_scale(arm, space, model)
                train += training_seconds(default_run, priced_as(model)) * steps
            other += sum(benchmark_seconds(default_run, job) for job in SPACE_STAGES[space])
        other += sum(benchmark_seconds(default_run, job) for job in RUN_STAGES)
        sample = sum(benchmark_seconds(default_run, f"sample-{priced_as(model)}-{setting}") for model, setting in cells)
        score = sum(benchmark_seconds(default_run, f"score-{priced_as(model)}-{setting}")
                    for model, setting in cells) / SCORE_JOBS_AT_ONCE
        total = train + sample + score + other
        rows.append({"arm": arm.name, "spaces": " ".join(arm.spaces), "scale": arm.scale, "seed": arm.seed,
                     "cells": len(cells), "train_s": train, "sample_s": sample, "score_s": score,
                     "other_s": other, "hours": total / 3600})
    # Named columns even with no rows: a finished study still writes its (zero) cost table.
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values(["hours", "arm"]).reset_index(drop=True)


CAPTION = ("The scaling study's cost on the machine that made the default run, estimated from that run's measured "
           "jobs (lediflow.studies.scaling_cost), for {which}: training = each network's "
           "recorded seconds x the arm's scale (a network continued from the smaller arm of its seed pays the "
           "difference, when that arm runs first or its checkpoints are on disk), evaluation = the default run's job "
           "benchmarks of the arm's cells (score jobs two at a time). Cheapest arm first; the x1 seed-0 arm is "
           "the default run and costs nothing more.")


def table_name(alone: bool = False, whole: bool = False) -> str:
    """cost, cost_alone, cost_whole or cost_whole_alone: one file per question the estimate answers."""
    return "cost" + ("_whole" if whole else "") + ("_alone" if alone else "")


def write(spec: dict, default_run: Path, out: Path, alone: bool = False, fresh_clone: bool = False,
          whole: bool = False) -> pd.DataFrame:
    """results/scaling/<table_name>.{md,csv,tex}: the estimate per arm and the total."""
    frame = estimate(spec, default_run, alone, fresh_clone, whole)
    shown = frame.copy()
    total = {"arm": "total", "spaces": "", "scale": math.nan, "seed": math.nan, "cells": frame["cells"].sum(),
             **{column: frame[column].sum() for column in ("train_s", "sample_s", "score_s", "other_s", "hours")}}
    shown = pd.concat([shown, pd.DataFrame([total])], ignore_index=True)
    for column in ("train_s", "sample_s", "score_s", "other_s"):
        shown[column] = shown[column].map(lambda v: f"{v:.0f}")
    shown["hours"] = shown["hours"].map(lambda v: f"{v:.2f}")
    shown["scale"] = shown["scale"].map(lambda v: "" if math.isnan(v) else scaling.scale_label(v))
    shown["seed"] = shown["seed"].map(lambda v: "" if math.isnan(v) else f"{v:.0f}")
    which = "every arm of the study, finished or not" if whole else "the arms not yet finished in this checkout"
    caption = CAPTION.format(which=which)
    caption += " Here every arm alone, as in a fresh clone per arm: nothing is continued." if alone else ""
    caption += (" Checkpoints of finished arms in this checkout are ignored, as in a fresh clone of this commit."
                if fresh_clone and not alone and not whole else "")
    caption += (" The whole study's price, as if none of its arms had run yet." if whole else "")
    tables.write_table(shown.set_index("arm"), out, table_name(alone, whole), caption)
    return frame
