"""GPU section of the benchmarks; benchmarks/run.py adds it when CUDA is present.

- train img/s of the presets' DiT (dit-b) at 256x256x3 pixels, patch 16, and on 32x32x4 latents, patch 2,
  in bf16 autocast with fused AdamW and TF32 (the presets' numerics), batch 64;
- sampling ms/image at euler-8 (batch 250) of the same two networks, bf16;
- Inception img/s at 256x256x3 inputs (the score stage's extractor, channels_last);
- train_ratio on the GPU: lediflow's Trainer over a bare loop with the same numerics.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

from lediflow.core.errors import LediflowError
from lediflow.method.flow_matching import flow_matching_loss, gaussian_coupling, sample_time
from lediflow.method.networks.dit import build_dit
from lediflow.method.numerics import Numerics
from lediflow.method.sampling import sample_batch
from lediflow.method.trainer import TrainConfig, Trainer

from bare import steady_images_per_s  # benchmarks/ is on sys.path: run.py imports this module from there

CUDA = torch.device("cuda")
GEOMETRIES = {"pixel 256x256x3 /16": (256, 3, 16), "latent 32x32x4 /2": (32, 4, 2)}
BATCH = 64


def _sync_time(fn, repeats: int) -> float:
    fn()  # warm-up (kernels, allocator, autotuning)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _bare_train_seconds(res: int, ch: int, patch: int, steps: int, numerics: Numerics) -> float:
    torch.manual_seed(0)
    model = build_dit("dit-b", res, ch, patch).to(CUDA)
    opt = numerics.optimizer(model.parameters(), 1e-4, 0.0)
    data = torch.rand(BATCH * 4, ch, res, res, device=CUDA) * 2 - 1
    gen = torch.Generator(CUDA).manual_seed(0)

    def loop() -> None:
        for _ in range(steps):
            x1 = data[torch.randint(len(data), (BATCH,), generator=gen, device=CUDA)]
            with numerics.autocast():
                loss = flow_matching_loss(model, gaussian_coupling(x1, gen), x1, sample_time(BATCH, gen, CUDA)).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    return _sync_time(loop, 3) / steps


def _trainer_train_seconds(res: int, ch: int, patch: int, steps: int, numerics: Numerics) -> float:
    torch.manual_seed(0)
    model = build_dit("dit-b", res, ch, patch)
    data = torch.rand(BATCH * 4, ch, res, res, device=CUDA) * 2 - 1

    def loss_fn(net, gen):
        x1 = data[torch.randint(len(data), (BATCH,), generator=gen, device=CUDA)]
        return flow_matching_loss(net, gaussian_coupling(x1, gen), x1, sample_time(BATCH, gen, CUDA)).total, {}

    with tempfile.TemporaryDirectory() as tmp:
        # the bare loop's clock starts after one warm-up loop of `steps` steps; so does this one (its metrics
        # windows after the first, each ending in a loss read, which synchronises the GPU)
        cfg = TrainConfig(steps=2 * steps, batch_size=BATCH, lr=1e-4, checkpoint_every=10**9, log_every=steps)
        trainer = Trainer(model, loss_fn, tmp, cfg, 0, CUDA, {}, progress=False, numerics=numerics)
        trainer.fit()
        return BATCH / steady_images_per_s(trainer.metrics_path, steps)


def _sample_ms(res: int, ch: int, patch: int, numerics: Numerics) -> float:
    torch.manual_seed(0)
    model = build_dit("dit-b", res, ch, patch).to(CUDA).eval()
    velocity = numerics.velocity(model)
    batch = 250
    seconds = _sync_time(lambda: sample_batch(velocity, None, range(batch), 0, (ch, res, res), "euler", 8, None,
                                              CUDA), 3)
    return 1000 * seconds / batch


def _inception_per_s() -> float:
    from lediflow.analysis.metrics.inception import InceptionFeatures, resolve_weights

    net = InceptionFeatures(resolve_weights(None, Path.home() / ".cache" / "lediflow"), CUDA)
    images = torch.randint(0, 256, (1000, 3, 256, 256), dtype=torch.uint8).numpy()
    return len(images) / _sync_time(lambda: net(images, 200), 2)


def run(steps: int = 20) -> Iterator[tuple[str, str, str, str]]:
    """The rows, each yielded as soon as it is measured: a run stopped at a GPU slot's time limit keeps what it had."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    card = torch.cuda.get_device_name(CUDA)
    bf16 = Numerics(CUDA, "bf16")
    for name, (res, ch, patch) in GEOMETRIES.items():
        bare = _bare_train_seconds(res, ch, patch, steps, bf16)
        yield (f"gpu train img/s [{name}]", f"{BATCH / bare:.0f}", "-",
               f"{card}, dit-b, batch {BATCH}, bf16 autocast, fused AdamW, TF32")
        yield (f"gpu sample ms/image [{name}, euler-8]", f"{_sample_ms(res, ch, patch, bf16):.2f}", "-",
               f"{card}, dit-b, batch 250, bf16")
        if name.startswith("latent"):
            ours = _trainer_train_seconds(res, ch, patch, steps, bf16)
            yield ("gpu train_ratio (Trainer / bare loop)", f"{bare / ours:.3f}", ">= 0.95",
                   f"{card}, dit-b on latents, bf16")
    try:
        yield ("gpu Inception img/s (256x256x3 in)", f"{_inception_per_s():.0f}", "-", card)
    except (LediflowError, ImportError, OSError) as exc:  # a bare GPU image: no FID weights, no torch-fidelity
        yield ("gpu Inception img/s (256x256x3 in)", "n/a", "-", f"{card}: {exc}")
