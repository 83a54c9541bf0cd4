"""tables: the paper-style tables and figures of a run, from its score files."""

from __future__ import annotations

from lediflow import artifacts, figures, paths, tables
from lediflow.config import Params

CAPTIONS = {
    "quality_vs_nfe": "Cells: FID / KID / [CMMD /] mmd_inception (NFE, ms per image incl. prior and decode). "
                      "NFE counts velocity-network calls only; the latent sampler's calls are in the score files.",
    "speedup": "Speedup at matched quality. Target: the baseline's best FID over the grid, at NFE_b. NFE_l: "
               "where LeDiFlow first reaches it (interpolated on log NFE). NFE-only speedup = NFE_b / NFE_l; "
               "wall-clock speedup = ms/image ratio with LeDiFlow's latent sampler and prior decoder included.",
    "quality_ratio": "Quality ratio at equal NFE: baseline metric / LeDiFlow metric (> 1 favours LeDiFlow); "
                     "'mean' averages over the step grid. CMMD is NaN where no CLIP weights were available.",
    "headline": "The paper's headline claims beside this run's measurements (definitions in the other captions).",
}


def make_tables(params: Params) -> dict:
    run = paths.run_dir(params)
    scores = tables.load_scores(run / "scores")
    speed = tables.speedup(scores)
    ratio = tables.quality_ratio(scores)
    made = {
        "quality_vs_nfe": tables.quality_vs_nfe(scores),
        "speedup": speed,
        "quality_ratio": ratio,
        "headline": tables.headline(speed, ratio),
    }
    table_dir, figure_dir = paths.tables_dir(params), paths.figures_dir(params)
    for name, frame in made.items():
        tables.write_table(frame, table_dir, name, CAPTIONS[name])
    # Long format for DVC plots and for anyone re-plotting.
    artifacts.write_text_atomic(table_dir / "scores_long.csv", scores.to_csv(index=False, float_format="%.6g"))
    figures.quality_vs_nfe(scores, figure_dir)
    for model in paths.flow_models(params):
        figures.sample_strip(run / "samples", model, paths.settings(params), figure_dir)
    figures.training_losses(run / "models", figure_dir)
    return {name: len(frame) for name, frame in made.items()}
