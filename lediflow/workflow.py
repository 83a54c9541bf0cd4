"""Helpers the Snakefile calls: config resolution and the path table.

The path table is shared by the Snakefile's rules and the dvc.yaml generator,
so the two can never name different files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from lediflow import artifacts
from lediflow.config import Params, run_dir, validate
from lediflow.errors import ConfigError


def resolve_config(config: dict) -> tuple[Params, Path, Path]:
    """Validate Snakemake's merged config; exit 2 with one line when it is bad.

    Writes results/<run>/params.yaml (only when its content changes, so no
    mtime churn) for the CLI calls of every rule.
    """
    try:
        params = validate(dict(config))
    except ConfigError as exc:
        print(f"lediflow: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    config.clear()
    config.update(params)
    folder = run_dir(params)
    params_file = folder / "params.yaml"
    text = "# Resolved params of this run (written by the Snakefile; do not edit).\n" + yaml.safe_dump(
        params, sort_keys=False
    )
    if not params_file.is_file() or params_file.read_text() != text:
        artifacts.write_text_atomic(params_file, text)
    return params, folder, params_file
