"""The path table: where every artifact of a run lives.

The Snakefile's rules, the CLI stages and the dvc.yaml generator all ask this
module, so no two places spell a path differently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lediflow.core.errors import ConfigError
from lediflow.method.names import ZERO_STEP_SETTINGS
from lediflow.method.names import ADAPTIVE_SOLVERS, FIXED_GRID_SOLVERS

Params = dict[str, Any]  # resolved params.yaml: the schema's defaults merged with the config files and --set

SPACES = ("pixel", "latent")
PRIORS = ("gaussian", "learned", "ot")
# sources drawn from N(0, I): the Gaussian baseline and OT-CFM (the same draws, paired by minibatch OT); both get
# the baseline's equal-compute steps and its extra grid points
GAUSSIAN_SOURCES = ("gaussian", "ot")
SHIPPED_WEIGHTS = "pretrained/fashion-mnist-32"  # the default run's pixel-space weights, committed (docs/sampling.md)


def run_dir(params: Params) -> Path:
    """results/<run.name>: the root of every artifact of this run."""
    return Path(params["run"]["results_dir"]) / params["run"]["name"]


def data_dir(params: Params) -> Path:
    return run_dir(params) / "data"


def model_dir(params: Params, name: str) -> Path:
    """results/<run>/models/<name>: prior-<space>, latent_sampler-<space>, flow-<space>-<prior>, autoencoder."""
    return run_dir(params) / "models" / name


def flow_name(space: str, prior: str) -> str:
    return f"flow-{space}-{prior}"


def prior_name(space: str) -> str:
    """The auxiliary model of a space: prior-pixel or prior-latent."""
    return f"prior-{space}"


def latent_sampler_name(space: str) -> str:
    return f"latent_sampler-{space}"


def prior_report_dir(params: Params, space: str = "pixel") -> Path:
    return run_dir(params) / "prior_report" / space


def autoencoder_dir(params: Params) -> Path:
    return run_dir(params) / "models" / "autoencoder"


def latents_dir(params: Params) -> Path:
    """Posterior mean and std of every image under the autoencoder, normalised, plus norm.json."""
    return run_dir(params) / "latents"


def sample_dir(params: Params, model: str, setting: str) -> Path:
    """results/<run>/samples/<model>/<setting>, setting like euler-8 or dopri5-1e-05."""
    return run_dir(params) / "samples" / model / setting


def extras_dir(params: Params) -> Path:
    """Interpolation and inpainting figures."""
    return run_dir(params) / "extras"


def settings(params: Params, model: str | None = None) -> list[str]:
    """The (solver, budget) cells of the sampling sweep: those every model gets, plus `model`'s own extras.

    sample.baseline_extra_steps adds fixed-grid step counts for the Gaussian baselines only, so that
    the baseline's curve can reach its plateau inside the grid (the speedup's target needs it).
    """
    cfg = params["sample"]
    extra = cfg["baseline_extra_steps"] if model is not None and model.rsplit("-", 1)[-1] in GAUSSIAN_SOURCES else {}
    zero = list(ZERO_STEP_SETTINGS) if cfg["zero_step_cells"] and model is not None and model.endswith("-learned") \
        else []
    fixed = [f"{solver}-{steps}" for solver in cfg["solvers"]
             for steps in sorted(set(cfg["steps"]) | set(extra.get(solver, [])))]
    return zero + fixed + [f"dopri5-{tol:g}" for tol in cfg["dopri5_tolerances"]]


def solver_settings(params: Params, model: str) -> list[str]:
    """The cells of `model` that run its flow (all but the zero-step cells)."""
    return [s for s in settings(params, model) if s not in ZERO_STEP_SETTINGS]


def flow_models(params: Params) -> list[str]:
    return [flow_name(space, prior) for space in params["flow"]["spaces"] for prior in params["flow"]["priors"]]


def cells(params: Params) -> list[tuple[str, str]]:
    """Every (model, setting) pair the run samples and scores, and nothing else."""
    return [(model, setting) for model in flow_models(params) for setting in settings(params, model)]


def zero_step_cells(params: Params) -> list[tuple[str, str]]:
    """The learned prior's own cells (what a prior-only study scores): (flow-<space>-learned, prior-*)."""
    return [(flow_name(space, "learned"), setting) for space in params["flow"]["spaces"]
            for setting in ZERO_STEP_SETTINGS]


def timing_file(params: Params, space: str) -> Path:
    """results/<run>/timing/<space>.json: repeated, interleaved ms/image of both arms at every setting."""
    return run_dir(params) / "timing" / f"{space}.json"


def parse_setting(setting: str) -> tuple[str, int | None, float | None]:
    """euler-8 -> ("euler", 8, None); dopri5-1e-05 -> ("dopri5", None, 1e-05); prior-x0 -> ("prior-x0", 0, None);
    anything else a one-line error."""
    if setting in ZERO_STEP_SETTINGS:
        return setting, 0, None
    solver, _, budget = setting.partition("-")
    usage = (f"setting {setting!r} is not a solver cell; use <solver>-<steps> with solver one of "
             f"{', '.join(FIXED_GRID_SOLVERS)} and steps >= 1 (e.g. euler-8), or dopri5-<tolerance> with "
             "0 < tolerance < 1 (e.g. dopri5-1e-05), or prior-x0 / prior-mean (the learned prior alone, NFE 0)")
    try:
        if solver in ADAPTIVE_SOLVERS:
            tol = float(budget)
            if 0 < tol < 1:
                return solver, None, tol
        elif solver in FIXED_GRID_SOLVERS and budget.isdigit() and int(budget) >= 1:
            return solver, int(budget), None
    except ValueError:
        pass
    raise ConfigError(usage)


def parse_flow_name(name: str) -> tuple[str, str]:
    """flow-pixel-learned -> ("pixel", "learned"); anything else a one-line error."""
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "flow" or parts[1] not in SPACES or parts[2] not in PRIORS:
        raise ConfigError(f"model {name!r} is not a flow model; use flow-<space>-<prior> with space one of "
                          f"{', '.join(SPACES)} and prior one of {', '.join(PRIORS)} (e.g. flow-pixel-learned)")
    return parts[1], parts[2]


def check_cell(params: Params, model: str, setting: str) -> tuple[str, str, str, int | None, float | None]:
    """(space, prior, solver, steps, tol) of a cell the CLI was asked for; the model must be one this run trains."""
    space, prior = parse_flow_name(model)
    if model not in flow_models(params):
        raise ConfigError(f"model {model!r} is not trained by run {params['run']['name']!r} "
                          f"(flow.spaces x flow.priors gives {', '.join(flow_models(params))})")
    cell = parse_setting(setting)
    if setting in ZERO_STEP_SETTINGS and prior != "learned":
        raise ConfigError(f"setting {setting!r} samples the learned prior; use it with a flow-<space>-learned model")
    return (space, prior, *cell)


def reference_dir(params: Params) -> Path:
    """Features of the real reference images (Inception, and CLIP where available)."""
    return run_dir(params) / "reference"


def reference_splits(params: Params) -> list[str]:
    """The primary reference split first, then the second one (if any and different)."""
    cfg = params["score"]
    second = cfg["second_reference"]
    return [cfg["reference_split"]] + ([second] if second and second != cfg["reference_split"] else [])


def score_file(params: Params, model: str, setting: str) -> Path:
    """results/<run>/scores/<model>/<setting>.json: small, committed, DVC metrics."""
    return run_dir(params) / "scores" / model / f"{setting}.json"


def data_floor_file(params: Params) -> Path:
    """results/<run>/scores/data_floor.json: the second reference split scored like a cell (committed)."""
    return run_dir(params) / "scores" / "data_floor.json"


def autoencoder_floor_file(params: Params) -> Path:
    """results/<run>/scores/autoencoder_floor.json: reconstructed test images scored like a cell (committed)."""
    return run_dir(params) / "scores" / "autoencoder_floor.json"


def tables_dir(params: Params) -> Path:
    return run_dir(params) / "tables"


def figures_dir(params: Params) -> Path:
    return run_dir(params) / "figures"
