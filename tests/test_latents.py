"""The latent variant: AutoencoderKL save/load round trips and exactly stored latents."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lediflow.pipeline import config, paths
from lediflow.method.autoencoder import LatentCodec, build_vae, load_pretrained
from lediflow.pipeline.data import prepare
from lediflow.core.errors import LediflowError
from lediflow.pipeline.sources import ImageSource
from lediflow.pipeline.stages.latents import encode_latents, train_autoencoder

TINY = {"block_out_channels": [8, 16], "latent_channels": 2, "layers_per_block": 1, "norm_num_groups": 4}


def _params(tmp_path: Path, image_tree: Path, *sets: str) -> dict:
    return config.load_params([], [
        f"run.results_dir={tmp_path / 'results'}", "run.device=cpu", "data.source=image-folder",
        f"data.path={image_tree}", "data.resolution=16", "data.test_fraction=0.25",
        "autoencoder.block_out_channels=[8, 16]", "autoencoder.latent_channels=2", "autoencoder.norm_num_groups=4",
        "autoencoder.train.steps=3", "autoencoder.train.batch_size=4", "autoencoder.train.checkpoint_every=3",
        "autoencoder.encode_batch_size=5", *sets])


def test_save_pretrained_then_local_load_gives_same_outputs_offline(tmp_path: Path, monkeypatch):
    torch.manual_seed(0)
    vae = build_vae({**TINY}, channels=3, resolution=16).eval()
    vae.save_pretrained(tmp_path / "vae")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_pretrained(str(tmp_path / "vae"), None, torch.device("cpu"))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(vae.encode(x).latent_dist.mean, loaded.encode(x).latent_dist.mean)
        assert torch.equal(vae.decode(torch.ones(1, 2, 8, 8)).sample, loaded.decode(torch.ones(1, 2, 8, 8)).sample)


def test_missing_pretrained_folder_is_one_line(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LediflowError, match="cannot load AutoencoderKL"):
        load_pretrained(str(tmp_path / "empty"), None, torch.device("cpu"))


def test_trained_autoencoder_round_trips_and_latents_are_stored_exactly(tmp_path: Path, image_tree: Path):
    params = _params(tmp_path, image_tree)
    prepare(params)
    manifest = train_autoencoder(params, progress=False)
    assert manifest["training"]["step"] == 3
    vae_dir = Path(manifest["vae_dir"])
    assert (vae_dir / "config.json").is_file()
    info = encode_latents(params)
    assert info["latent_shape"] == [2, 8, 8] and info["test_psnr_db"] > 0

    latents = paths.latents_dir(params)
    codec = LatentCodec.load(latents, torch.device("cpu"))
    test = ImageSource(paths.data_dir(params), "test", torch.device("cpu"))
    x = test.slice(0, len(test))
    stored_mean = torch.from_numpy(np.load(latents / "test_mean.npy"))
    stored_std = torch.from_numpy(np.load(latents / "test_std.npy"))
    mean, std = codec.encode(x)  # recomputed in one pass
    assert torch.allclose(stored_mean, mean, atol=1e-6) and torch.allclose(stored_std, std, atol=1e-6)
    # Decoding a stored mean is encode -> decode in one pass.
    with torch.no_grad():
        direct = codec.vae.decode(codec.vae.encode(x).latent_dist.mean).sample
    assert torch.allclose(codec.decode(stored_mean), direct, atol=1e-5)
    norm = json.loads((latents / "norm.json").read_text())
    train_mean = np.load(latents / "train_mean.npy")
    assert np.allclose(train_mean.mean(axis=(0, 2, 3)), 0, atol=1e-5)  # normalised by train statistics
    assert len(norm["scale"]) == 2 and all(s > 0 for s in norm["scale"])


def test_training_stages_start_from_the_same_weights_every_run(tmp_path: Path, image_tree: Path):
    from lediflow.core import artifacts
    from lediflow.pipeline.stages.prior import train_prior

    hashes = []
    for name in ("a", "b"):
        torch.manual_seed(len(hashes) + 123)  # whatever the global RNG holds before the stage
        params = _params(tmp_path / name, image_tree, "prior.channels=[4, 8]", "prior.z_dim=4",
                         "prior.train.steps=2", "prior.train.batch_size=4", "prior.train.checkpoint_every=2")
        prepare(params)
        train_prior(params, "pixel", progress=False)
        hashes.append(artifacts.sha256_file(paths.model_dir(params, "prior-pixel") / "model.safetensors"))
    assert hashes[0] == hashes[1]


def test_train_scale_lengthens_every_trained_network_together(tmp_path: Path, image_tree: Path):
    from lediflow.pipeline.stages.prior import train_latent_sampler, train_prior

    params = _params(tmp_path, image_tree, "run.train_scale=1.5", "autoencoder.train.steps=2",
                     "prior.channels=[4, 8]", "prior.z_dim=4", "prior.train.steps=2", "prior.train.batch_size=4",
                     "prior.train.checkpoint_every=10", "latent_sampler.hidden=8", "latent_sampler.depth=1",
                     "latent_sampler.train.steps=4", "latent_sampler.train.batch_size=4",
                     "latent_sampler.train.checkpoint_every=10", "latent_sampler.train.warmup_steps=0")
    prepare(params)
    assert train_autoencoder(params, progress=False)["training"]["step"] == 3  # round(2 x 1.5)
    assert train_prior(params, "pixel", progress=False)["training"]["step"] == 3
    assert train_latent_sampler(params, "pixel", progress=False)["training"]["step"] == 6
