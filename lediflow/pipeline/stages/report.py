"""tables: the paper-style tables and figures of a run, from its committed score, timing and training files.

Everything this stage reads is small and committed to git (scores/, timing/,
training/, the resolved params.yaml), so a fresh clone without any DVC
output regenerates every table and figure byte for byte; the figures that
need DVC outputs (sample strips) are left as they are when those are absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lediflow.core import artifacts, provenance

from lediflow.analysis import comparisons, figures, tables

from lediflow.pipeline import paths
from lediflow.pipeline.config import Params

DEFINITIONS = ("Target: the baseline's best FID over a solver's grid; NFE_b: its first grid NFE within tolerance "
               "(95% half-width of the difference, from bootstrap standard errors) of the target. ")
CAPTIONS = {
    "quality_vs_nfe": "Cells: FID ± 95% / KID ± 95% [/ CMMD] [/ P precision, R recall] (NFE, ms per image incl. "
                      "latent sampler, prior and "
                      "decode; the median of repeated interleaved timings where the run has them). ± is 1.96 "
                      "bootstrap standard errors over the generated samples (reference fixed). NFE counts "
                      "velocity-network calls only; the latent sampler's calls are in the score files. Precision / recall "
                      "(Kynkaanniemi et al. 2019, k = 3, Inception features against the primary reference): the "
                      "share of samples on the data's manifold (fidelity) and of data on the samples' (diversity); "
                      "absent from score files made before 2026-12-07.",
    "speedup": DEFINITIONS + "ledi_nfe: where LeDiFlow's curve reaches the target, linear in log NFE between grid "
               "points; speedup_nfe = NFE_b / ledi_nfe, speedup_wall_clock = the baseline's ms/image at NFE_b over "
               "LeDiFlow's at ledi_nfe (same interpolation; latent sampler and prior decoder included). Bounds: "
               "'>=' only when LeDiFlow's first grid point is already at or below the target (or the baseline "
               "still improves at its last), '<=' when LeDiFlow never reaches it; a first point within tolerance "
               "but above the target is interpolated. ledi_nfe_grid / speedup_nfe_grid: the first LeDiFlow grid "
               "point within tolerance of the target (steps a solver can run). speedup_nfe_plus5pct / plus10pct: "
               "the target 5% / 10% above the baseline's best with both NFEs interpolated, to show how far a "
               "plateau cell moves the number.",
    "inverse_speedup": "The baseline NFE needed to reach LeDiFlow's FID at 1, 2 and 4 steps of the same solver "
                       "(linear in log NFE between the baseline's grid points) over LeDiFlow's NFE. '>': the "
                       "baseline never reaches it on its grid (its last NFE stands in: a lower bound); '<=': "
                       "already at its first grid point.",
    "quality_ratio": "Baseline / LeDiFlow at equal NFE (> 1 favours LeDiFlow), with the 95% half-width of each "
                     "ratio (delta method on the bootstrap errors); fid_resolved is 'no' where the FID "
                     "difference lies inside its 95% interval ('n/a': cells without error bars). 'geomean': "
                     "geometric mean over the step grid; its interval bootstraps the cells jointly where the "
                     "score files hold replicates, else bounds the error for any correlation between cells (the "
                     "row says which). "
                     "dopri5 (accurate solve) has its own row and is in no mean. CMMD is NaN where no CLIP "
                     "weights were available.",
    "cost_ratio": "Baseline / LeDiFlow FID at equal measured cost: each LeDiFlow cell's ms/image (latent sampler, "
                  "prior decoder and autoencoder decode included) located on the baseline's FID-vs-ms curve of "
                  "the same solver, linear in log ms; undefined outside the baseline's measured range. "
                  "fid_ratio_ci: 95% half-width, the interpolated FID's se taken as the same interpolation of "
                  "its neighbours' (a bound for any correlation). 'geomean': geometric mean over the defined "
                  "cells, its interval the bound over correlations.",
    "headline": "The paper's headline claims beside this run's measurements (definitions in the other captions).",
    "data_floor": "The data floor: real images of the second reference split scored against the primary "
                  "reference like a cell (same sample count, same bootstrap); no model can be expected below it. "
                  "Runs with latent flows add the autoencoder floor: the same test images encoded and decoded "
                  "(posterior mean) by the run's autoencoder, the best any latent flow can reach.",
}
SECOND = " Same cells and definitions, scored against the second reference split ({split}) instead of {primary}."


COMPARISONS = ("quality_vs_nfe", "speedup", "inverse_speedup", "quality_ratio", "cost_ratio")


def _comparison_tables(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The four tables made the same way for every reference (name -> frame, in COMPARISONS order)."""
    return {"quality_vs_nfe": tables.quality_vs_nfe(scores), "speedup": comparisons.speedup(scores),
            "inverse_speedup": comparisons.inverse_speedup(scores),
            "quality_ratio": comparisons.quality_ratio(scores), "cost_ratio": comparisons.cost_ratio(scores)}


def _write(made: dict, folder: Path, captions: dict) -> None:
    for name, frame in made.items():
        tables.write_table(frame, folder, name, captions[name])


def _data_floor(params: Params) -> dict | None:
    path = paths.data_floor_file(params)
    return tables.read_json(path, "run `lediflow reference-features`") if path.is_file() else None


def _autoencoder_floor(params: Params) -> dict | None:
    path = paths.autoencoder_floor_file(params)
    if "latent" not in params["flow"]["spaces"] or not path.is_file():  # runs made before the stage have none
        return None
    return tables.read_json(path, "run `lediflow autoencoder-floor`")


def make_tables(params: Params) -> dict:
    run = paths.run_dir(params)
    scores = tables.load_cells(paths.run_dir(params), paths.cells(params))
    made = _comparison_tables(scores)
    made["headline"] = comparisons.headline(made["speedup"], made["quality_ratio"], made["cost_ratio"])
    states = tables.code_states(run, paths.cells(params))
    made_by = provenance.describe(states)
    floor, ae_floor = _data_floor(params), _autoencoder_floor(params)
    if floor is not None:
        made["data_floor"] = tables.data_floor_table(floor, ae_floor)
    table_dir, figure_dir = paths.tables_dir(params), paths.figures_dir(params)
    _write(made, table_dir, {**CAPTIONS, "headline": f"{CAPTIONS['headline']} Scores {made_by}."})
    commits = sorted({(s["commit"], s.get("dirty")) for s in states if s}, key=str)
    artifacts.write_json_atomic(table_dir / "provenance.json", {
        "scores": made_by, "commits": [{"commit": c, "dirty": d} for c, d in commits],
        "cells_without_record": sum(s is None for s in states), "cells": len(states)})
    # Long format for DVC plots and for anyone re-plotting.
    artifacts.write_text_atomic(table_dir / "scores_long.csv", tables.long_format(scores))
    second = scores["second_reference"].iloc[0]
    if second and scores["fid_second"].notna().all():
        extra = SECOND.format(split=second, primary=params["score"]["reference_split"])
        second_made = {f"{name}_{second}_reference": frame
                       for name, frame in _comparison_tables(tables.on_second_reference(scores)).items()}
        _write(second_made, table_dir, {f"{n}_{second}_reference": CAPTIONS[n] + extra for n in COMPARISONS})
        made.update(second_made)
    figures.quality_vs_nfe(scores, figure_dir, floor=floor, autoencoder_floor=ae_floor)
    for model in paths.flow_models(params):
        figures.sample_strip(run / "samples", model, paths.settings(params, model), figure_dir)
    tables.sync_training_records(run)
    figures.training_losses(run / "training", figure_dir)
    return {name: len(frame) for name, frame in made.items()}
