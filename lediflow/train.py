"""One trainer for every model: AdamW, warm-up, clipping, EMA, checkpoints, resume, DDP.

Determinism: the random draws of step k come from a generator seeded by
(seed, k, rank), and the learning rate is a pure function of k; with the
optimiser and EMA state restored from a checkpoint, N steps in one go and
N/2 + resume + N/2 are bitwise identical on CPU.

Checkpoints (rank 0 only) are folders `checkpoints/step_XXXXXXXX/` written
through a staging folder: model.safetensors, ema.safetensors,
optimizer.safetensors and state.json (step, fingerprint of the params that
define the run, param groups, RNG states). A checkpoint whose fingerprint
differs from the current params is never resumed from.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from lediflow import artifacts, runtime, seeding
from lediflow.checkpoint import load_tensors, save_tensors
from lediflow.errors import LediflowError
from lediflow.numerics import Numerics

# loss_fn(model, generator) -> (scalar loss, extra scalars to log)
LossFn = Callable[[nn.Module, torch.Generator], tuple[torch.Tensor, dict[str, float]]]
_CKPT = re.compile(r"^step_(\d{8})$")


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> "TrainConfig":
        return cls(**section)


@dataclass
class TrainResult:
    step: int
    resumed_from: int
    train_seconds: float
    samples_seen: int
    parameters: int
    final_loss: float
    device: str = ""  # runtime.device_name of the last part of the training (a resumed one may have had others)


class NonFiniteLossError(LediflowError):
    """The loss or the gradient became NaN/inf."""


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def init_distributed(device: torch.device) -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1); gloo on CPU, nccl on GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr over warmup_steps, then constant."""
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay with the usual (1 + k) / (10 + k) ramp, so early EMA weights are not stuck at init."""
    return min(decay, (1 + step) / (10 + step))


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _CKPT.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_CKPT.match(p.name).group(1)))


class Trainer:
    def __init__(self, model: nn.Module, loss_fn: LossFn, out_dir: str | Path, cfg: TrainConfig, seed: int,
                 device: torch.device, fingerprint: dict[str, Any], desc: str = "train", progress: bool = True,
                 numerics: Numerics | None = None, on_start: Callable[[int, Callable[[int], torch.Generator]], None]
                 | None = None) -> None:
        self.cfg, self.seed, self.device, self.desc = cfg, seed, device, desc
        self.numerics = numerics or Numerics(device)
        # Told the first step and the generator of every step before the loop starts (a prefetching data loader).
        self.on_start = on_start
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.metrics_path = self.out_dir / "metrics.jsonl"
        # The fingerprint decides which checkpoints may be resumed; knobs that do not change the
        # optimisation path (the step budget, checkpoint/log cadence) are left out, so a finished
        # run can be extended by raising train.steps.
        self.fingerprint = json.loads(json.dumps({**_strip_cadence(fingerprint), **self.numerics.fingerprint()},
                                                 sort_keys=True, default=str))
        self.rank, self.world_size = world()
        if cfg.batch_size % self.world_size:
            raise LediflowError(f"batch_size {cfg.batch_size} is not divisible by {self.world_size} ranks; change train.batch_size")
        self.model = model.to(device)
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model) if self.world_size > 1 else None)
        self.loss_fn = loss_fn
        self.optimizer = self.numerics.optimizer(self.model.parameters(), cfg.lr, cfg.weight_decay)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.step = 0
        self.train_seconds = 0.0
        self.progress = progress and self.rank == 0

    # --- state ------------------------------------------------------------
    def _optimizer_tensors(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        state = self.optimizer.state_dict()
        tensors = {}
        for pid, pstate in state["state"].items():
            for key, value in pstate.items():
                tensors[f"{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        return tensors, state["param_groups"]

    def _load_optimizer(self, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            pid, key = name.split(".", 1)
            state.setdefault(int(pid), {})[key] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})

    def save_checkpoint(self) -> Path | None:
        if self.rank != 0:
            return None
        final = self.ckpt_dir / f"step_{self.step:08d}"
        opt_tensors, groups = self._optimizer_tensors()
        with artifacts.staged_dir(final) as stage:
            save_tensors(stage / "model.safetensors", self.model.state_dict())
            save_tensors(stage / "ema.safetensors", self.ema)
            save_tensors(stage / "optimizer.safetensors", opt_tensors)
            save_tensors(stage / "rng.safetensors", {"torch": torch.get_rng_state()})
            files = {p.name: artifacts.sha256_file(p) for p in sorted(stage.glob("*.safetensors"))}
            artifacts.write_json_atomic(stage / "state.json", {
                "files": files,
                "step": self.step, "fingerprint": self.fingerprint, "param_groups": groups,
                "train_seconds": self.train_seconds, "numpy_rng": _jsonable(np.random.get_state()),
                "python_rng": _jsonable(random.getstate()),
            })
        for old in list_checkpoints(self.ckpt_dir)[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def try_resume(self) -> int:
        """Restore the newest checkpoint made with the same fingerprint; returns its step (0: fresh).

        Checkpoints past cfg.steps (a run shortened since) or of another fingerprint are removed,
        so a later prune can never delete the checkpoint this run resumed from.
        """
        found = list_checkpoints(self.ckpt_dir)
        usable = []
        for ckpt in found:
            state = _read_state(ckpt)
            if state is None:
                self._set_aside(ckpt, "its state.json is not valid JSON")
            elif state["fingerprint"] == self.fingerprint and state["step"] <= self.cfg.steps:
                usable.append((ckpt, state))
            elif self.rank == 0:
                shutil.rmtree(ckpt, ignore_errors=True)
        for ckpt, state in reversed(usable):  # the newest checkpoint that verifies
            damage = _checkpoint_damage(ckpt, state)
            if damage is None:
                try:
                    self._restore(ckpt, state)
                    return self.step
                except LediflowError as exc:
                    damage = str(exc)
            self._set_aside(ckpt, damage)
        return 0

    def _restore(self, ckpt: Path, state: dict[str, Any]) -> None:
        self.model.load_state_dict(load_tensors(ckpt / "model.safetensors", self.device))
        self.ema = load_tensors(ckpt / "ema.safetensors", self.device)
        self._load_optimizer(load_tensors(ckpt / "optimizer.safetensors", self.device), state["param_groups"])
        torch.set_rng_state(load_tensors(ckpt / "rng.safetensors")["torch"])
        np.random.set_state(_from_jsonable_numpy(state["numpy_rng"]))
        random.setstate(_from_jsonable_python(state["python_rng"]))
        self.step, self.train_seconds = state["step"], state["train_seconds"]

    def _set_aside(self, ckpt: Path, why: str) -> None:
        """A damaged checkpoint is renamed (kept for inspection, never resumed or pruned) and the next one tried."""
        print(f"lediflow: checkpoint {ckpt} is damaged ({why}); set it aside as {ckpt.name}.damaged and "
              "resuming from the one before it (or from step 0)", file=sys.stderr)
        if self.rank == 0:
            aside = ckpt.with_name(ckpt.name + artifacts.DAMAGED_SUFFIX)
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(ckpt, aside)

    # --- loop -------------------------------------------------------------
    @torch.no_grad()
    def _update_ema(self) -> None:
        # ema <- decay * ema + (1 - decay) * theta, every floating tensor in one multi-tensor launch (the same
        # elementwise ops as a per-tensor loop, so the same bits; on a GPU one kernel instead of hundreds)
        decay = ema_decay_at(self.step, self.cfg.ema_decay)
        state = self.model.state_dict()
        floats = [name for name, value in state.items() if value.dtype.is_floating_point]
        ema, live = [self.ema[n] for n in floats], [state[n].detach() for n in floats]
        torch._foreach_mul_(ema, decay)
        torch._foreach_add_(ema, live, alpha=1 - decay)
        for name, value in state.items():
            if not value.dtype.is_floating_point:
                self.ema[name].copy_(value)

    def _all_finite(self, *values: torch.Tensor) -> bool:
        flag = torch.tensor([float(all(torch.isfinite(v).all() for v in values))], device=self.device)
        if self.world_size > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def _mean_over_ranks(self, value: torch.Tensor) -> float:
        value = value.detach().clone()
        if self.world_size > 1:
            dist.all_reduce(value)
            value /= self.world_size
        return float(value)

    def _trim_metrics(self) -> None:
        """Drop metric lines past the resumed step, so a resumed run logs each step once."""
        if self.rank != 0 or not self.metrics_path.exists():
            return
        lines = [ln for ln in self.metrics_path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln)["step"] <= self.step]
        artifacts.write_text_atomic(self.metrics_path, "".join(ln + "\n" for ln in keep))

    def fit(self) -> TrainResult:
        cfg = self.cfg
        resumed = self.try_resume()
        self._trim_metrics() if resumed else (self.rank == 0 and self.metrics_path.unlink(missing_ok=True))
        net = self.ddp or self.model
        net.train()
        forward = self.numerics.maybe_compile(net)  # the same parameters: EMA and checkpoints see self.model
        if self.on_start is not None:
            self.on_start(self.step, self.step_generator)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.desc, disable=not self.progress,
                   mininterval=2.0, dynamic_ncols=True)
        window_start, window_samples, loss_value = time.perf_counter(), 0, float("nan")
        metrics = open(self.metrics_path, "a") if self.rank == 0 else None
        try:
            while self.step < cfg.steps:
                started = time.perf_counter()
                lr = learning_rate(self.step, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                gen = self.step_generator(self.step)
                with self.numerics.autocast():  # run.precision; backward runs outside, as autocast wants
                    loss, extra = self.loss_fn(forward, gen)
                if not self._all_finite(loss):
                    raise NonFiniteLossError(self._nonfinite_message("loss", loss))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                params = [p for p in self.model.parameters() if p.grad is not None]
                if cfg.grad_clip is not None:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                else:
                    grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
                if not self._all_finite(grad_norm):
                    raise NonFiniteLossError(self._nonfinite_message("gradient norm", grad_norm))
                self.optimizer.step()
                self.step += 1
                self._update_ema()
                self.train_seconds += time.perf_counter() - started
                window_samples += cfg.batch_size
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    loss_value = self._mean_over_ranks(loss)
                    elapsed = time.perf_counter() - window_start
                    record = {"step": self.step, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                              "images_per_s": window_samples / max(elapsed, 1e-9), **extra}
                    if metrics is not None:
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                    bar.set_postfix(loss=f"{loss_value:.4f}")
                    window_start, window_samples = time.perf_counter(), 0
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save_checkpoint()
                    if self.world_size > 1:
                        dist.barrier()
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
        n_params = sum(p.numel() for p in self.model.parameters())
        if math.isnan(loss_value):
            loss_value = self._last_logged_loss()  # a finished run resumed: no step ran in this call
        # Cumulative like train_seconds (restored from the checkpoint): both count every step since step 0.
        samples_seen = self.step * cfg.batch_size  # batch_size is global, split over ranks
        return TrainResult(self.step, resumed, self.train_seconds, samples_seen, n_params, loss_value,
                           runtime.device_name(self.device))

    def step_generator(self, step: int) -> torch.Generator:
        """The generator of every random draw of `step` (data, noise, time): a pure function of (seed, step, rank)."""
        return seeding.generator(self.device, self.seed, seeding.STREAM_TRAIN, step, self.rank)

    def _last_logged_loss(self) -> float:
        if not self.metrics_path.is_file():
            return float("nan")
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        return float(json.loads(lines[-1])["loss"]) if lines else float("nan")

    def _nonfinite_message(self, what: str, value: torch.Tensor) -> str:
        last = list_checkpoints(self.ckpt_dir)
        kept = f"last good checkpoint {last[-1]} kept" if last else "no checkpoint was written yet"
        return (f"{self.desc}: {what} became {float(value.detach().float().reshape(-1)[0])} at step {self.step + 1}; "
                f"{kept}; lower train.lr or set train.grad_clip")


_CADENCE_KEYS = {"steps", "checkpoint_every", "keep_checkpoints", "log_every"}


def _read_state(ckpt: Path) -> dict[str, Any] | None:
    try:
        return json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError):
        return None


def _checkpoint_damage(ckpt: Path, state: dict[str, Any]) -> str | None:
    """Why a checkpoint cannot be trusted (a file differs from the sha256 its state.json records), or None."""
    for name, digest in state.get("files", {}).items():  # checkpoints of older versions record none
        path = ckpt / name
        if not path.is_file() or artifacts.sha256_file(path) != digest:
            return f"{name} differs from the sha256 its state.json records"
    return None


def _strip_cadence(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_cadence(v) for k, v in node.items() if k not in _CADENCE_KEYS}
    return node


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
