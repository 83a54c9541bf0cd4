"""The path table: where every artifact of a run lives.

The Snakefile's rules, the CLI stages and the dvc.yaml generator all ask this
module, so no two places spell a path differently.
"""

from __future__ import annotations

from pathlib import Path

from lediflow.config import Params, run_dir


def data_dir(params: Params) -> Path:
    return run_dir(params) / "data"


def model_dir(params: Params, name: str) -> Path:
    """results/<run>/models/<name>: prior, latent_sampler, flow-<space>-<prior>."""
    return run_dir(params) / "models" / name


def flow_name(space: str, prior: str) -> str:
    return f"flow-{space}-{prior}"


def prior_report_dir(params: Params) -> Path:
    return run_dir(params) / "prior_report"
