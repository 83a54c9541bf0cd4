"""Model files: safetensors weights + arch.json, written atomically.

A model folder holds `model.safetensors` (the EMA weights used downstream),
`arch.json` (kind + constructor arguments) and `manifest.json`. Trainer
checkpoints live in `checkpoints/step_XXXXXXXX/` beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lediflow.core import artifacts
from lediflow.core.errors import LediflowError


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    with artifacts.atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


def load_tensors(path: Path, device: torch.device | str = "cpu", required: bool = True) -> dict[str, torch.Tensor]:
    """A verified safetensors file; missing or damaged -> one line (a damaged one is moved aside for a rebuild).
    required=False for files whose checksums another record holds (a trainer checkpoint's state.json)."""
    path = artifacts.verify_file(path, "run the stage that trains it (or snakemake) first", required)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise artifacts.quarantine(path, f"not a readable safetensors file: {str(exc)[:80]}") from None


def build_model(kind: str, arch: dict[str, Any]) -> nn.Module:
    """Rebuild a network from its arch.json entry."""
    if kind == "dit":
        from lediflow.method.networks.dit import DiT, DiTConfig

        cfg = DiTConfig(hidden=arch["hidden"], depth=arch["depth"], heads=arch["heads"], mlp_ratio=arch["mlp_ratio"])
        return DiT(arch["resolution"], arch["channels"], arch["patch_size"], cfg)
    if kind == "auxiliary":
        from lediflow.method.networks.auxiliary import AuxiliaryModel

        return AuxiliaryModel(arch["resolution"], arch["channels"], arch["z_dim"], arch["widths"],
                              arch["logvar_min"], arch["logvar_max"])
    if kind == "latent_mlp":
        from lediflow.method.networks.latent_mlp import LatentVelocityMLP

        return LatentVelocityMLP(arch["z_dim"], arch["hidden"], arch["depth"], arch.get("standardize", False))
    raise LediflowError(f"unknown model kind {kind!r} in arch.json")


def save_model(folder: Path, kind: str, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    save_tensors(folder / "model.safetensors", weights)
    artifacts.write_json_atomic(folder / "arch.json", {"kind": kind, "arch": model.arch})


def load_model(folder: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The frozen (eval-mode, no-grad) EMA network stored in `folder`."""
    folder = Path(folder)
    arch_file = artifacts.verify_file(folder / "arch.json", f"run the stage that trains {folder.name} first")
    spec = artifacts.read_json(arch_file)
    model = build_model(spec["kind"], spec["arch"])
    model.load_state_dict(load_tensors(folder / "model.safetensors"))
    return model.to(device).eval().requires_grad_(False)
