"""Glue shared by the training stages: fingerprints and the model folder's manifest."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from lediflow import artifacts
from lediflow.train import TrainResult


def file_hash(path: Path) -> str:
    return artifacts.sha256_file(path)


def data_fingerprint(data_folder: Path) -> str:
    """The dataset's identity: the sha256 of its train split as recorded in its manifest."""
    return artifacts.read_manifest(data_folder)["files"]["train.npy"]["sha256"]


def finish_model_dir(folder: Path, stage: str, params_used: dict[str, Any], result: TrainResult,
                     fingerprint: dict[str, Any], weights: dict[str, Any], extra: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Write the model folder's manifest: training compute, inputs' hashes, params."""
    return artifacts.write_manifest(
        folder, stage, params_used, weights=weights,
        extra={"training": asdict(result), "fingerprint": fingerprint, **(extra or {})},
    )
