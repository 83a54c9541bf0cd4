"""CUDA checks: skipped without a GPU. Run on a GPU machine with `python -m pytest -q tests/test_gpu.py`.

bf16 and compiled training steps, bf16 against fp32 sampling within a stated tolerance, and DDP over NCCL
when two GPUs exist.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lediflow.method.flow_matching import flow_matching_loss, gaussian_coupling, sample_time
from lediflow.method.networks.dit import build_dit
from lediflow.method.numerics import Numerics
from lediflow.method.sampling import sample_batch
from lediflow.method.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
REPO = Path(__file__).resolve().parents[1]
# bf16 keeps 8 mantissa bits: per-call relative error ~4e-3; over 8 Euler steps the images (in [-1, 1]) of a
# randomly perturbed DiT move by well under this.
BF16_SAMPLE_TOLERANCE = 0.05


def _trainer(out: Path, numerics: Numerics, steps: int = 3) -> Trainer:
    device = numerics.device
    torch.manual_seed(0)
    model = build_dit("dit-xs", 32, 3, 4)
    data = torch.rand(64, 3, 32, 32, device=device) * 2 - 1
    cfg = TrainConfig(steps=steps, batch_size=16, lr=1e-3, warmup_steps=1, checkpoint_every=steps, log_every=1)

    def loss_fn(net, gen):
        x1 = data[torch.randint(len(data), (16,), generator=gen, device=device)]
        return flow_matching_loss(net, gaussian_coupling(x1, gen), x1, sample_time(16, gen, device)).total, {}

    return Trainer(model, loss_fn, out, cfg, seed=0, device=device, fingerprint={}, progress=False, numerics=numerics)


@pytest.mark.parametrize("precision, compile", [("bf16", False), ("fp32", True), ("bf16", True)])
def test_a_training_step_on_cuda(tmp_path: Path, precision: str, compile: bool):
    trainer = _trainer(tmp_path, Numerics(torch.device("cuda"), precision, compile))
    result = trainer.fit()
    assert torch.isfinite(torch.tensor(result.final_loss))
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(v.dtype == torch.float32 for v in trainer.ema.values() if v.is_floating_point())
    assert trainer.optimizer.param_groups[0]["fused"] is True


def test_bf16_sampling_matches_fp32_within_tolerance():
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_dit("dit-tiny", 32, 3, 2).to(device).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ref = sample_batch(model, None, range(16), 0, (3, 32, 32), "euler", 8, None, device).images
    fast = Numerics(device, "bf16").velocity(model)
    low = sample_batch(fast, None, range(16), 0, (3, 32, 32), "euler", 8, None, device).images
    assert low.dtype == torch.float32
    assert (ref - low).abs().max().item() < BF16_SAMPLE_TOLERANCE


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_over_nccl_keeps_the_ranks_identical(tmp_path: Path):
    script = REPO / "tests" / "toy_training.py"
    env = {**os.environ, "LEDIFLOW_TOY_DEVICE": "cuda"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path), "4"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
