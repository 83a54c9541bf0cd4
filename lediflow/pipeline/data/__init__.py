"""Dataset stage: turn a source into results/<run>/data/{train,test}.npy + manifest.

Each split is one uint8 NCHW .npy file, memory-mappable with
`np.load(path, mmap_mode="r")`; labels, when the source has them, sit beside
it as <split>_labels.npy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lediflow.core import artifacts

from lediflow.pipeline import paths
from lediflow.pipeline.config import Params
from lediflow.pipeline.data import fashion_mnist, image_folder, paper
from lediflow.core.errors import LediflowError

SPLITS = ("train", "test")


def cache_dir(params: Params) -> Path:
    configured = params["data"]["cache_dir"] or os.environ.get("LEDIFLOW_CACHE")
    return Path(configured or Path.home() / ".cache" / "lediflow").expanduser()


def load_split(folder: str | Path, split: str) -> np.ndarray:
    """Memory-map one prepared split, (N, C, R, R) uint8."""
    path = Path(folder) / f"{split}.npy"
    return artifacts.load_npy(path, "run `lediflow prepare-data` (or snakemake) first")


def _cap(array: np.ndarray, limit: int | None) -> np.ndarray:
    return array if limit is None else array[:limit]


def _prepare_fashion_mnist(params: Params, stage: Path) -> dict[str, Any]:
    cfg = params["data"]
    if cfg["channels"] != 1:
        raise LediflowError("fashion-mnist is grayscale; set data.channels: 1")
    folder, how = fashion_mnist.locate(cfg["path"], cache_dir(params), cfg["url"])
    counts = {}
    for split in SPLITS:
        images, labels = fashion_mnist.load(folder, split, cfg["resolution"])
        limit = cfg["max_train"] if split == "train" else cfg["max_test"]
        np.save(stage / f"{split}.npy", np.ascontiguousarray(_cap(images, limit)))
        np.save(stage / f"{split}_labels.npy", _cap(labels, limit))
        counts[split] = int(len(_cap(images, limit)))
    return {"source_location": {"how": how, "path": str(folder)}, "counts": counts,
            "classes": fashion_mnist.CLASSES, "skipped_images": 0}


def _prepare_folder(params: Params, stage: Path, root: Path, provenance: dict[str, Any]) -> dict[str, Any]:
    cfg = params["data"]
    files = image_folder.list_images(root)
    train_idx, test_idx = image_folder.split_indices(len(files), cfg["test_fraction"], params["run"]["seed"])
    counts, skipped = {}, []
    for split, idx in (("train", train_idx), ("test", test_idx)):
        limit = cfg["max_train"] if split == "train" else cfg["max_test"]
        chosen = [files[i] for i in _cap(idx, limit)]
        skipped += image_folder.write_images(
            chosen, stage / f"{split}.npy", cfg["resolution"], cfg["channels"], cfg["on_bad_image"]
        )
        counts[split] = int(np.load(stage / f"{split}.npy", mmap_mode="r").shape[0])
    return {"source_location": provenance, "counts": counts, "skipped_images": len(skipped),
            "skipped_paths": skipped[:100]}


def prepare(params: Params) -> dict[str, Any]:
    """Build the dataset folder atomically and return its manifest."""
    cfg = params["data"]
    target = paths.data_dir(params)
    with artifacts.staged_dir(target) as stage:
        if cfg["source"] == "fashion-mnist":
            info = _prepare_fashion_mnist(params, stage)
        elif cfg["source"] == "image-folder":
            if cfg["path"] is None:
                raise LediflowError("data.source image-folder needs data.path, the folder of images")
            info = _prepare_folder(params, stage, Path(cfg["path"]), {"how": "path", "path": cfg["path"]})
        else:
            root, provenance = paper.fetch(cfg["source"], cfg["path"], cfg["url"], cfg["sha256"], cache_dir(params))
            info = _prepare_folder(params, stage, root, provenance)
        shape = list(np.load(stage / "train.npy", mmap_mode="r").shape[1:])
        manifest = artifacts.write_manifest(
            stage, "prepare-data", {"run": params["run"], "data": cfg},
            extra={"source": cfg["source"], "shape": shape, "dtype": "uint8", "layout": "NCHW", **info},
        )
    return manifest
