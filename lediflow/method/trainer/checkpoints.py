"""Trainer checkpoints: `checkpoints/step_XXXXXXXX/` folders written through a staging folder.

Each holds model, ema, optimizer and rng safetensors and a sealed state.json (step, fingerprint of the params
that define the run, param groups, RNG states, and the sha256 of every tensor file). A checkpoint is resumed
only when all of that verifies: an edited state.json (its seal), a tensor file that differs from its recorded
sha256, or a step that disagrees with the folder's name marks it damaged, and the one before it is tried.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lediflow.core import artifacts
from lediflow.method.checkpoint import load_tensors, save_tensors

_CKPT = re.compile(r"^step_(\d{8})$")


def checkpoint_step(folder: Path) -> int | None:
    match = _CKPT.match(folder.name)
    return int(match.group(1)) if match else None


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _CKPT.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: checkpoint_step(p))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    state = optimizer.state_dict()
    tensors = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            tensors[f"{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, state["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                   groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save(ckpt_dir: Path, step: int, model: nn.Module, ema: dict[str, torch.Tensor],
         optimizer: torch.optim.Optimizer, fingerprint: dict[str, Any], train_seconds: float, keep: int) -> Path:
    """Write step's checkpoint (rank 0 only), then prune all but the newest `keep`."""
    final = ckpt_dir / f"step_{step:08d}"
    opt_tensors, groups = optimizer_tensors(optimizer)
    with artifacts.staged_dir(final) as stage:
        save_tensors(stage / "model.safetensors", model.state_dict())
        save_tensors(stage / "ema.safetensors", ema)
        save_tensors(stage / "optimizer.safetensors", opt_tensors)
        save_tensors(stage / "rng.safetensors", {"torch": torch.get_rng_state()})
        files = {p.name: artifacts.sha256_file(p) for p in sorted(stage.glob("*.safetensors"))}
        artifacts.write_sealed_json(stage / "state.json", {
            "files": files,
            "step": step, "fingerprint": fingerprint, "param_groups": groups,
            "train_seconds": train_seconds, "numpy_rng": _jsonable(np.random.get_state()),
            "python_rng": _jsonable(random.getstate()),
        })
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(ckpt: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(state, None) for a state.json that verifies, else (None, why it cannot be trusted)."""
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None, "its state.json is not valid JSON"
    if not isinstance(state, dict) or state.get(artifacts.SEAL) != artifacts.content_digest(state):
        return None, "its state.json was edited or carries no checksum"
    if state.get("step") != checkpoint_step(ckpt):
        return None, f"its state.json names step {state.get('step')}, its folder step {checkpoint_step(ckpt)}"
    return state, None


def damage(ckpt: Path, state: dict[str, Any]) -> str | None:
    """Why a checkpoint cannot be trusted (a file differs from the sha256 its state.json records), or None."""
    for name, digest in state["files"].items():
        path = ckpt / name
        if not path.is_file() or artifacts.sha256_file(path) != digest:
            return f"{name} differs from the sha256 its state.json records"
    return None


def restore(ckpt: Path, state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            device: torch.device) -> dict[str, torch.Tensor]:
    """Load weights, optimiser and every RNG from a verified checkpoint; returns the EMA weights."""
    # every file was checked against state.json's sha256 (damage()), so no manifest is asked for
    model.load_state_dict(load_tensors(ckpt / "model.safetensors", device, required=False))
    ema = load_tensors(ckpt / "ema.safetensors", device, required=False)
    load_optimizer(optimizer, load_tensors(ckpt / "optimizer.safetensors", device, required=False),
                   state["param_groups"])
    torch.set_rng_state(load_tensors(ckpt / "rng.safetensors", required=False)["torch"])
    np.random.set_state(_from_jsonable_numpy(state["numpy_rng"]))
    random.setstate(_from_jsonable_python(state["python_rng"]))
    return ema


def set_aside(ckpt: Path, why: str, rank: int) -> None:
    """A damaged checkpoint is renamed (kept for inspection, never resumed or pruned) and the next one tried."""
    print(f"lediflow: checkpoint {ckpt} is damaged ({why}); set it aside as {ckpt.name}.damaged and "
          "resuming from the one before it (or from step 0)", file=sys.stderr)
    if rank == 0:
        aside = ckpt.with_name(ckpt.name + artifacts.DAMAGED_SUFFIX)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(ckpt, aside)


def _jsonable(state: Any) -> Any:
    if isinstance(state, np.ndarray):
        return state.tolist()
    if isinstance(state, (tuple, list)):
        return [_jsonable(s) for s in state]
    return state


def _from_jsonable_numpy(state: list) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


def _from_jsonable_python(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
