"""Glue shared by the training stages: fingerprints, the fit-save-manifest sequence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lediflow import artifacts
from lediflow.checkpoint import save_model
from lediflow.train import LossFn, TrainConfig, Trainer, world


def file_hash(path: Path) -> str:
    return artifacts.sha256_file(path)


def data_fingerprint(data_folder: Path, split: str = "train") -> str:
    """A split's identity: the sha256 of its file as recorded in the dataset manifest."""
    manifest = artifacts.read_manifest(data_folder, "run `lediflow prepare-data` (or snakemake) first")
    return manifest["files"][f"{split}.npy"]["sha256"]


@dataclass
class TrainingJob:
    """One model's training: what to fit, where it goes, and what defines it."""

    model: torch.nn.Module
    kind: str  # arch.json kind, see checkpoint.build_model
    loss_fn: LossFn
    folder: Path
    train_cfg: TrainConfig
    seed: int
    device: torch.device
    fingerprint: dict[str, Any]  # decides which checkpoints may be resumed
    stage: str
    params_used: dict[str, Any]
    weights: dict[str, Any]  # hashes of the inputs, for the manifest
    extra: dict[str, Any] | None = None


def run_training(job: TrainingJob, progress: bool = True) -> dict[str, Any]:
    """Fit (resuming when possible), save the EMA weights, write the manifest; {} on non-zero ranks."""
    trainer = Trainer(job.model, job.loss_fn, job.folder, job.train_cfg, job.seed, job.device, job.fingerprint,
                      desc=job.folder.name, progress=progress)
    result = trainer.fit()
    if world()[0] != 0:
        return {}
    save_model(job.folder, job.kind, job.model, trainer.ema)
    return artifacts.write_manifest(
        job.folder, job.stage, job.params_used, weights=job.weights,
        extra={"training": asdict(result), "fingerprint": job.fingerprint, **(job.extra or {})},
    )
