"""Glue shared by the training stages: fingerprints, the fit-save-manifest sequence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from lediflow.method.autoencoder import LatentCodec

from lediflow.core import artifacts
from lediflow.method.checkpoint import save_model
from lediflow.pipeline.config import Params
from lediflow.method.numerics import Numerics, configure
from lediflow.method.trainer import LossFn, TrainConfig, Trainer, world
from lediflow.pipeline import paths
from lediflow.pipeline.loader import PrefetchedImages
from lediflow.pipeline.sources import ImageSource, LatentSource


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
    numerics: Numerics | None = None  # run.precision / run.compile on this device (None: fp32)
    on_start: Callable[[int, Callable[[int], torch.Generator]], None] | None = None  # a prefetching loader's start


def data_options(params: Params, space: str) -> dict[str, Any]:
    """Data options that change what a pixel-space model learns, for its fingerprint (empty by default, so
    checkpoints made before the option existed still resume)."""
    return {"hflip": True} if space == "pixel" and params["data"]["hflip"] else {}


def job_runtime(params: Params, data: Any, device: torch.device) -> dict[str, Any]:
    """The TrainingJob fields every training stage fills the same way: numerics, and the loader's start hook."""
    return {"numerics": configure(params, device), "on_start": getattr(data, "start", None)}


def numerics_record(numerics: Numerics) -> dict[str, Any]:
    """How a model was trained, for its manifest (absent at the defaults, like the fingerprint's entry)."""
    if numerics.precision == "fp32" and not numerics.compile:
        return {}
    return {"numerics": {"precision": numerics.precision, "compile": numerics.compile}}


def run_training(job: TrainingJob, progress: bool = True) -> dict[str, Any]:
    """Fit (resuming when possible), save the EMA weights, write the manifest; {} on non-zero ranks."""
    trainer = Trainer(job.model, job.loss_fn, job.folder, job.train_cfg, job.seed, job.device, job.fingerprint,
                      desc=job.folder.name, progress=progress, numerics=job.numerics, on_start=job.on_start)
    result = trainer.fit()
    if world()[0] != 0:
        return {}
    save_model(job.folder, job.kind, job.model, trainer.ema)
    return artifacts.write_manifest(
        job.folder, job.stage, job.params_used, weights=job.weights,
        extra={"training": asdict(result), "fingerprint": job.fingerprint, **numerics_record(trainer.numerics),
               **(job.extra or {})},
    )


def training_data(params: dict, space: str, split: str, device: torch.device) -> "ImageSource | LatentSource":
    """What the autoencoder, the prior and the flow of `space` learn: images (pixel; read ahead by data.workers
    DataLoader processes when set, mirrored at random with data.hflip) or normalised latents (latent)."""
    if space == "pixel":
        data = params["data"]
        if data["workers"] > 0:
            return PrefetchedImages(paths.data_dir(params), split, device, data["hflip"], data["workers"])
        return ImageSource(paths.data_dir(params), split, device, data["hflip"])
    return LatentSource(paths.latents_dir(params), split, device)


def load_codec(params: Params, device: torch.device) -> "LatentCodec":
    """The latent codec of the run; a trained autoencoder's weights must verify against its manifest (a user's
    pretrained folder carries none and is checked only where one records it)."""
    from lediflow.method.autoencoder import LatentCodec  # diffusers: imported only where a latent cell needs it

    if params["autoencoder"]["source"] == "train":
        for weights in sorted((paths.autoencoder_dir(params) / "vae").glob("*.safetensors")):
            artifacts.verify_file(weights, "run `lediflow train-autoencoder` (or snakemake) first")
    return LatentCodec.load(paths.latents_dir(params), device)
