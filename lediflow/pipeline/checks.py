"""The rules of params.yaml that a JSON schema cannot state: shapes that must divide, a sweep that must exist.

validate() calls check_params() after the schema, so the CLI and the Snakefile refuse a config whose
networks cannot be built before any job starts (a bad latent_patch_size used to fail minutes into the run).
"""

from __future__ import annotations

import json
from pathlib import Path

from lediflow.core.errors import ConfigError
from lediflow.pipeline import paths
from lediflow.pipeline.paths import Params



def _halvings(size: int, levels: int, key: str, what: str) -> int:
    """size / 2^(levels-1), or a one-line error naming the key that sets `levels`."""
    factor = 2 ** (levels - 1)
    if size % factor or size < factor:
        raise ConfigError(f"params error: {what} of {size} cannot be halved {levels - 1} times for the "
                          f"{levels} entries of {key}; change {key} or data.resolution")
    return size // factor


def _divides(patch: int, size: int, key: str, what: str) -> None:
    if size % patch:
        raise ConfigError(f"params error: {key} = {patch} does not divide the {what} of {size}; "
                          f"choose a divisor of {size} or change data.resolution")


def _pretrained_factor(cfg: Params) -> int | None:
    """Downsampling of a pretrained VAE from its local config.json; None when only the hub knows it."""
    folder = Path(cfg["pretrained"]) / (cfg.get("subfolder") or "")
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    try:
        levels = len(json.loads(config_file.read_text())["block_out_channels"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{config_file} is not an AutoencoderKL config; point autoencoder.pretrained at a "
                          "folder written by save_pretrained") from None
    return 2 ** (levels - 1)


def latent_grid(params: Params) -> int | None:
    """Side of the autoencoder's latent grid (None: a hub VAE whose config is not on disk)."""
    cfg, resolution = params["autoencoder"], params["data"]["resolution"]
    if cfg["source"] == "pretrained":
        factor = _pretrained_factor(cfg)
        if factor is None:
            return None
        if resolution % factor:
            raise ConfigError(f"params error: data.resolution {resolution} is not divisible by the pretrained "
                              f"autoencoder's downsampling {factor}; change data.resolution")
        return resolution // factor
    if any(width % cfg["norm_num_groups"] for width in cfg["block_out_channels"]):
        raise ConfigError("params error: autoencoder.norm_num_groups must divide every entry of "
                          "autoencoder.block_out_channels; change one of them")
    return _halvings(resolution, len(cfg["block_out_channels"]), "autoencoder.block_out_channels", "data.resolution")


def check_geometry(params: Params) -> None:
    """Every network of the run can be built: patches tile their grids, encoders can halve their inputs."""
    resolution, flow = params["data"]["resolution"], params["flow"]
    learned = "learned" in flow["priors"]
    prior_levels = len(params["prior"]["channels"])
    if "pixel" in flow["spaces"]:
        _divides(flow["patch_size"], resolution, "flow.patch_size", "image side data.resolution")
        if learned:
            _halvings(resolution, prior_levels, "prior.channels", "the image side data.resolution")
    if "latent" in flow["spaces"]:
        grid = latent_grid(params)
        if grid is not None:
            _divides(flow["latent_patch_size"], grid, "flow.latent_patch_size", "latent grid side")
            if learned:
                _halvings(grid, prior_levels, "prior.channels", "the latent grid side")


def check_sweep(params: Params) -> None:
    """Every flow model has at least one solver cell (the zero-step prior cells do not run the flow)."""
    for model in paths.flow_models(params):
        if not paths.solver_settings(params, model):
            raise ConfigError("params error: the sampling sweep is empty (sample.steps and "
                              "sample.dopri5_tolerances are both empty); give at least one step count or tolerance")


def check_params(params: Params) -> None:
    check_geometry(params)
    check_sweep(params)
