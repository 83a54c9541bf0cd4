"""The training loop every model shares: AdamW, warm-up, clipping, EMA, checkpoints, resume, DDP.

Determinism: the random draws of step k come from a generator seeded by (seed, k, rank), and the learning
rate is a pure function of k; with the optimiser and EMA state restored from a checkpoint, N steps in one go
and N/2 + resume + N/2 are bitwise identical on CPU. A checkpoint whose fingerprint differs from the current
params is never resumed from (checkpoints.py says what else must verify).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from lediflow.core.errors import LediflowError
from lediflow.method import seeding
from lediflow.method.device import device_name
from lediflow.method.numerics import Numerics
from lediflow.method.trainer import checkpoints, metrics_log
from lediflow.method.trainer.config import LossFn, NonFiniteLossError, TrainConfig, TrainResult, learning_rate
from lediflow.method.trainer.distributed import all_finite, mean_over_ranks, world
from lediflow.method.trainer.ema import ema_decay_at, init_ema, update_ema

# knobs that do not change the optimisation path: a finished run can be extended by raising train.steps
_CADENCE_KEYS = {"steps", "checkpoint_every", "keep_checkpoints", "log_every"}


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
        # The fingerprint decides which checkpoints may be resumed; the cadence keys are left out.
        self.fingerprint = json.loads(json.dumps({**_strip_cadence(fingerprint), **self.numerics.fingerprint()},
                                                 sort_keys=True, default=str))
        self.rank, self.world_size = world()
        if cfg.batch_size % self.world_size:
            raise LediflowError(f"batch_size {cfg.batch_size} is not divisible by {self.world_size} ranks; change train.batch_size")
        self.model = model.to(device)
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model) if self.world_size > 1 else None)
        self.loss_fn = loss_fn
        self.optimizer = self.numerics.optimizer(self.model.parameters(), cfg.lr, cfg.weight_decay)
        self.ema = init_ema(self.model)
        self.step = 0
        self.train_seconds = 0.0
        self.progress = progress and self.rank == 0

    # --- state ------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        if self.rank != 0:
            return None
        return checkpoints.save(self.ckpt_dir, self.step, self.model, self.ema, self.optimizer, self.fingerprint,
                                self.train_seconds, self.cfg.keep_checkpoints)

    def try_resume(self) -> int:
        """Restore the newest checkpoint made with the same fingerprint that verifies; returns its step (0: fresh).

        Checkpoints past cfg.steps (a run shortened since) or of another fingerprint are removed,
        so a later prune can never delete the checkpoint this run resumed from.
        """
        usable = []
        for ckpt in checkpoints.list_checkpoints(self.ckpt_dir):
            state, why = checkpoints.read_state(ckpt)
            if state is None:
                checkpoints.set_aside(ckpt, why, self.rank)
            elif state["fingerprint"] == self.fingerprint and state["step"] <= self.cfg.steps:
                usable.append((ckpt, state))
            elif self.rank == 0:
                shutil.rmtree(ckpt, ignore_errors=True)
        for ckpt, state in reversed(usable):  # the newest checkpoint that verifies
            damage = checkpoints.damage(ckpt, state)
            if damage is None:
                try:
                    self.ema = checkpoints.restore(ckpt, state, self.model, self.optimizer, self.device)
                    self.step, self.train_seconds = state["step"], state["train_seconds"]
                    return self.step
                except LediflowError as exc:
                    damage = str(exc)
            checkpoints.set_aside(ckpt, damage, self.rank)
        return 0

    # --- loop -------------------------------------------------------------
    def _update_ema(self) -> None:
        update_ema(self.ema, self.model, ema_decay_at(self.step, self.cfg.ema_decay))

    def _clip(self) -> torch.Tensor:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.grad_clip is not None:
            return torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))

    def fit(self) -> TrainResult:
        cfg = self.cfg
        resumed = self.try_resume()
        if self.rank == 0:
            metrics_log.trim(self.metrics_path, self.step) if resumed else self.metrics_path.unlink(missing_ok=True)
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
                if not all_finite(self.device, self.world_size, loss):
                    raise NonFiniteLossError(self._nonfinite_message("loss", loss))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = self._clip()
                if not all_finite(self.device, self.world_size, grad_norm):
                    raise NonFiniteLossError(self._nonfinite_message("gradient norm", grad_norm))
                self.optimizer.step()
                self.step += 1
                self._update_ema()
                self.train_seconds += time.perf_counter() - started
                window_samples += cfg.batch_size
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    loss_value = mean_over_ranks(loss, self.world_size)
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
            loss_value = metrics_log.last_loss(self.metrics_path)  # a finished run resumed: no step ran now
        # Cumulative like train_seconds (restored from the checkpoint): both count every step since step 0.
        samples_seen = self.step * cfg.batch_size  # batch_size is global, split over ranks
        return TrainResult(self.step, resumed, self.train_seconds, samples_seen, n_params, loss_value,
                           device_name(self.device))

    def step_generator(self, step: int) -> torch.Generator:
        """The generator of every random draw of `step` (data, noise, time): a pure function of (seed, step, rank)."""
        return seeding.generator(self.device, self.seed, seeding.STREAM_TRAIN, step, self.rank)

    def _nonfinite_message(self, what: str, value: torch.Tensor) -> str:
        last = checkpoints.list_checkpoints(self.ckpt_dir)
        kept = f"last good checkpoint {last[-1]} kept" if last else "no checkpoint was written yet"
        return (f"{self.desc}: {what} became {float(value.detach().float().reshape(-1)[0])} at step {self.step + 1}; "
                f"{kept}; lower train.lr or set train.grad_clip")


def _strip_cadence(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_cadence(v) for k, v in node.items() if k not in _CADENCE_KEYS}
    return node
