"""tables: the paper-style tables and figures of a run, from its committed score, timing and training files.

Everything this stage reads is small and committed to git (scores/, timing/,
training/, the resolved params.yaml), so a fresh clone without any DVC
output regenerates every table and figure byte for byte; the figures that
need DVC outputs (sample strips) are left as they are when those are absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lediflow import artifacts, comparisons, figures, paths, tables
from lediflow.config import Params

DEFINITIONS = ("Target: the baseline's best FID over a solver's grid; NFE_b: its first grid NFE within tolerance "
               "(95% half-width of the difference, from bootstrap standard errors) of the target. ")
CAPTIONS = {
    "quality_vs_nfe": "Cells: FID ± 95% / KID ± 95% [/ CMMD] (NFE, ms per image incl. latent sampler, prior and "
                      "decode; the median of repeated interleaved timings where the run has them). ± is 1.96 "
                      "bootstrap standard errors over the generated samples (reference fixed). NFE counts "
                      "velocity-network calls only; the latent sampler's calls are in the score files.",
    "speedup": DEFINITIONS + "ledi_nfe: LeDiFlow's first grid NFE within tolerance of the target; speedup_nfe = "
               "NFE_b / ledi_nfe (achievable on the grid), speedup_nfe_interp = NFE_b over where LeDiFlow's curve "
               "crosses the target (linear in log NFE; no solver runs there). Wall-clock ratios use measured "
               "ms/image with LeDiFlow's latent sampler and prior decoder included. Bounds: '>=' when LeDiFlow is "
               "within tolerance at its first grid point or the baseline still improves at its last; '<=' when "
               "LeDiFlow never reaches the target.",
    "quality_ratio": "Baseline / LeDiFlow at equal NFE (> 1 favours LeDiFlow), with the 95% half-width of each "
                     "ratio (delta method on the bootstrap errors); fid_resolved is 'no' where the FID "
                     "difference lies inside its 95% interval ('n/a': cells without error bars). 'geomean': geometric mean over the step grid. "
                     "dopri5 (accurate solve) has its own row and is in no mean. CMMD is NaN where no CLIP "
                     "weights were available.",
    "cost_ratio": "Baseline / LeDiFlow FID at equal measured cost: each LeDiFlow cell's ms/image (latent sampler, "
                  "prior decoder and autoencoder decode included) located on the baseline's FID-vs-ms curve of "
                  "the same solver, linear in log ms; undefined outside the baseline's measured range. "
                  "'geomean': geometric mean over the defined cells.",
    "headline": "The paper's headline claims beside this run's measurements (definitions in the other captions).",
    "data_floor": "The data floor: real images of the second reference split scored against the primary "
                  "reference like a cell (same sample count, same bootstrap); no model can be expected below it. "
                  "Runs with latent flows add the autoencoder floor: the same test images encoded and decoded "
                  "(posterior mean) by the run's autoencoder, the best any latent flow can reach.",
}
SECOND = " Same cells and definitions, scored against the second reference split ({split}) instead of {primary}."


COMPARISONS = ("quality_vs_nfe", "speedup", "quality_ratio", "cost_ratio")


def _comparison_tables(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The four tables made the same way for every reference (name -> frame, in COMPARISONS order)."""
    return {"quality_vs_nfe": tables.quality_vs_nfe(scores), "speedup": comparisons.speedup(scores),
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
    scores = tables.load_scores(params)
    made = _comparison_tables(scores)
    made["headline"] = comparisons.headline(made["speedup"], made["quality_ratio"], made["cost_ratio"])
    floor, ae_floor = _data_floor(params), _autoencoder_floor(params)
    if floor is not None:
        made["data_floor"] = tables.data_floor_table(floor, ae_floor)
    table_dir, figure_dir = paths.tables_dir(params), paths.figures_dir(params)
    _write(made, table_dir, CAPTIONS)
    # Long format for DVC plots and for anyone re-plotting.
    artifacts.write_text_atomic(table_dir / "scores_long.csv", scores.to_csv(index=False, float_format="%.6g"))
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
