"""Mixed precision and the prefetching loader on a CPU: fp32 state under bf16 autocast, loader == in-loop reader."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lediflow.core import artifacts
from lediflow.method import seeding
from lediflow.method.flow_matching import flow_matching_loss, gaussian_coupling, sample_time
from lediflow.pipeline.loader import PrefetchedImages
from lediflow.method.networks.dit import build_dit
from lediflow.method.numerics import AutocastVelocity, Numerics
from lediflow.pipeline.sources import ImageSource
from lediflow.method.device import to_model_range
from lediflow.method.sampling import sample_batch
from lediflow.method.trainer import TrainConfig, Trainer

CPU = torch.device("cpu")


@pytest.fixture
def split(tmp_path: Path) -> Path:
    """A prepared split of 12 asymmetric 16x16 grayscale images (mirroring changes every one)."""
    images = np.random.default_rng(0).integers(0, 256, (12, 1, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "train.npy", images)
    artifacts.write_manifest(tmp_path, "prepare-data", {})  # as the data stage records its splits
    return tmp_path


def _trainer(out: Path, data: ImageSource, steps: int, numerics: Numerics | None = None) -> Trainer:
    torch.manual_seed(0)
    model = build_dit("dit-xs", 16, 1, 4)
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=2, log_every=1)

    def loss_fn(net, gen):
        x1 = data.batch(gen, 4)
        return flow_matching_loss(net, gaussian_coupling(x1, gen), x1, sample_time(4, gen, CPU)).total, {}

    return Trainer(model, loss_fn, out, cfg, seed=3, device=CPU, fingerprint={"toy": 1}, progress=False,
                   numerics=numerics, on_start=getattr(data, "start", None))


def test_bf16_autocast_trains_with_fp32_weights_ema_and_checkpoints(tmp_path: Path, split: Path):
    trainer = _trainer(tmp_path / "bf16", ImageSource(split, "train", CPU), 2, Numerics(CPU, "bf16"))
    result = trainer.fit()
    assert np.isfinite(result.final_loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(v.dtype == torch.float32 for v in trainer.ema.values() if v.is_floating_point())
    ckpt = tmp_path / "bf16" / "checkpoints" / "step_00000002"
    assert all(t.dtype == torch.float32 for t in load_file(str(ckpt / "model.safetensors")).values())
    assert trainer.fingerprint["precision"] == "bf16"
    fp32 = _trainer(tmp_path / "fp32", ImageSource(split, "train", CPU), 2)
    fp32.fit()
    assert "precision" not in fp32.fingerprint  # fp32 fingerprints are those of checkpoints made before the switch
    # bf16 really ran: the weights differ from the fp32 run's, slightly
    diff = max((a - b).abs().max().item() for a, b in zip(trainer.model.parameters(), fp32.model.parameters()))
    assert 0 < diff < 1e-2


def test_a_bf16_run_never_resumes_an_fp32_checkpoint(tmp_path: Path, split: Path):
    _trainer(tmp_path, ImageSource(split, "train", CPU), 2).fit()
    assert _trainer(tmp_path, ImageSource(split, "train", CPU), 4, Numerics(CPU, "bf16")).try_resume() == 0


def _draws(source: ImageSource, steps: range) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each step's batch and the step generator's next draw after it (what the rest of the step sees)."""
    make = lambda k: seeding.generator(CPU, 3, seeding.STREAM_TRAIN, k, 0)  # noqa: E731
    if hasattr(source, "start"):
        source.start(steps.start, make)
    out = []
    for k in steps:
        gen = make(k)
        out.append((source.batch(gen, 5), torch.rand(3, generator=gen)))
    return out


@pytest.mark.parametrize("hflip", [False, True])
def test_prefetching_workers_give_bitwise_the_in_loop_batches(split: Path, hflip: bool):
    in_loop = _draws(ImageSource(split, "train", CPU, hflip), range(2, 6))
    ahead = _draws(PrefetchedImages(split, "train", CPU, hflip, workers=2), range(2, 6))  # as if resumed at 2
    for (a, next_a), (b, next_b) in zip(in_loop, ahead):
        assert torch.equal(a, b) and torch.equal(next_a, next_b)


def test_training_with_workers_is_bitwise_training_without(tmp_path: Path, split: Path):
    runs = []
    for name, data in (("loop", ImageSource(split, "train", CPU, True)),
                       ("workers", PrefetchedImages(split, "train", CPU, True, workers=2))):
        trainer = _trainer(tmp_path / name, data, 4)
        trainer.fit()
        runs.append(trainer.model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_hflip_mirrors_about_half_the_images_and_nothing_else(split: Path):
    images = np.load(split / "train.npy")
    source = ImageSource(split, "train", CPU, hflip=True)
    gen = torch.Generator().manual_seed(0)
    batch = source.batch(gen, 200)
    gen = torch.Generator().manual_seed(0)
    idx = np.sort(torch.randint(len(images), (200,), generator=gen).numpy())
    plain = to_model_range(torch.from_numpy(images[idx]))
    mirrored = torch.tensor([torch.equal(b, p.flip(-1)) for b, p in zip(batch, plain)])
    same = torch.tensor([torch.equal(b, p) for b, p in zip(batch, plain)])
    assert bool((mirrored ^ same).all())  # every image is itself or its mirror
    assert 70 < int(mirrored.sum()) < 130


def test_bf16_sampling_keeps_the_ode_state_fp32_and_stays_near_fp32(tmp_path: Path):
    torch.manual_seed(0)
    model = build_dit("dit-xs", 16, 1, 4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # a non-trivial velocity (the zero-initialised head outputs 0)
    fast = Numerics(CPU, "bf16").velocity(model)
    assert isinstance(fast, AutocastVelocity) and Numerics(CPU, "bf16").velocity(model, adaptive=True) is model
    assert Numerics(CPU).velocity(model) is model
    x = torch.randn(2, 1, 16, 16)
    assert fast(x, torch.rand(2)).dtype == torch.float32
    ref = sample_batch(model, None, range(4), 0, (1, 16, 16), "euler", 4, None, CPU).images
    low = sample_batch(fast, None, range(4), 0, (1, 16, 16), "euler", 4, None, CPU).images
    assert low.dtype == torch.float32
    err = (ref - low).abs().max().item()
    assert 0 < err < 0.05  # bf16 changed the numbers, by less than 0.05 on a [-1, 1] scale
