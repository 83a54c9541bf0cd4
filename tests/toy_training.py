"""A tiny deterministic training job on the real Trainer, for resume/kill/DDP tests.

Run as a script: python tests/toy_training.py OUT STEPS [--sleep S] [--fail-at K]
Under torchrun it trains with DDP (gloo) and each rank writes its weights to
OUT/rank<r>.safetensors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lediflow.method.flow_matching import flow_matching_loss, gaussian_coupling, sample_time  # noqa: E402
from lediflow.method.networks.dit import build_dit  # noqa: E402
from lediflow.method.trainer import TrainConfig, Trainer, init_distributed, world  # noqa: E402

DATA = torch.linspace(-1, 1, 8 * 16 * 16).reshape(8, 1, 16, 16)


def toy_device() -> torch.device:
    """cpu, or (LEDIFLOW_TOY_DEVICE=cuda, tests/test_gpu.py's NCCL check) this rank's GPU."""
    if os.environ.get("LEDIFLOW_TOY_DEVICE") == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def make_trainer(out: Path, steps: int, sleep: float = 0.0, fail_at: int | None = None,
                 checkpoint_every: int = 2) -> Trainer:
    torch.manual_seed(0)
    device = toy_device()
    data = DATA.to(device)
    model = build_dit("dit-xs", 16, 1, 4)
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-3, warmup_steps=2, checkpoint_every=checkpoint_every,
                      keep_checkpoints=3, log_every=1, ema_decay=0.9)
    per_rank = cfg.batch_size // world()[1]

    def loss_fn(net, gen):
        if fail_at is not None and trainer.step + 1 == fail_at:
            return torch.tensor(float("nan"), requires_grad=True), {}
        if sleep:
            time.sleep(sleep)
        idx = torch.randint(len(data), (per_rank,), generator=gen, device=gen.device)
        x1 = data[idx]
        x0 = gaussian_coupling(x1, gen)
        return flow_matching_loss(net, x0, x1, sample_time(per_rank, gen, x1.device)).total, {}

    trainer = Trainer(model, loss_fn, out, cfg, seed=7, device=device,
                      fingerprint={"toy": 1}, desc="toy", progress=False)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    init_distributed(toy_device())
    trainer = make_trainer(args.out, args.steps, args.sleep)
    trainer.fit()
    rank = world()[0]
    save_file({k: v.contiguous().cpu() for k, v in trainer.model.state_dict().items()},
              str(args.out / f"rank{rank}.safetensors"))
    print(f"done rank {rank}", flush=True)


if __name__ == "__main__":
    main()
