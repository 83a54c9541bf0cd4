"""export-weights: a finished run's final weights as a folder `lediflow generate --run` reads anywhere.

The folder mirrors a run's layout (params.yaml, models/<name>/ with model.safetensors, arch.json, the training
log and the manifest the training stage wrote), without checkpoints, samples or scores: what a fresh clone
needs to draw images. Every copied file is verified against its manifest first, and the manifest travels
along, so the copy names the commit that trained it and is verified again where it is read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lediflow.core import artifacts
from lediflow.core.errors import LediflowError
from lediflow.pipeline import paths
from lediflow.pipeline.config import Params


def needed_models(params: Params, flows: list[str]) -> list[str]:
    """The flows and what their sources are drawn from (a learned prior and its latent sampler; the
    autoencoder for latent space)."""
    names: list[str] = []
    for flow in flows:
        space, prior = paths.parse_flow_name(flow)
        if prior == "learned":
            names += [paths.prior_name(space), paths.latent_sampler_name(space)]
        if space == "latent":
            raise LediflowError(f"{flow}: exporting latent-space models (autoencoder, latents/norm.json) is not "
                                "supported; export pixel-space flows")
        names.append(flow)
    return list(dict.fromkeys(names))


def export_weights(params: Params, flows: list[str], out: Path) -> dict[str, int]:
    """Copy the verified final weights of `flows` (and what they need) to `out`; returns bytes per model."""
    sizes = {}
    staged = []
    for name in needed_models(params, flows):
        source = paths.model_dir(params, name)
        manifest = artifacts.read_manifest(source, f"train {name} first (snakemake --cores all)")
        for rel in manifest["files"]:
            artifacts.verify_file(source / rel, f"train {name} first (snakemake --cores all)")
        staged.append((name, source, manifest))
    for name, source, manifest in staged:
        target = out / "models" / name
        target.mkdir(parents=True, exist_ok=True)
        for rel in [*manifest["files"], artifacts.MANIFEST]:
            shutil.copy2(source / rel, target / rel)
        sizes[name] = sum(info["bytes"] for info in manifest["files"].values())
    shutil.copy2(paths.run_dir(params) / "params.yaml", out / "params.yaml")
    return sizes
