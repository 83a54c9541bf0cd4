"""The paper presets' 256x256 path on a CPU: the whole DAG on synthetic images with the SD VAE's configuration.

The three presets (configs/{ffhq,afhq,lhq}256.yaml) differ only in run.name and data.source (checked below),
so one end-to-end run (FFHQ's, data from a folder) covers the DAG they share, and AFHQ's and LHQ's own data
branches (a zip and a tar archive) are run through their data stage. The SD VAE cannot be downloaded here:
the pretrained branch loads a local save_pretrained folder of an AutoencoderKL with random weights. The DAG
runs with the SD VAE's block structure at a quarter to an eighth of its widths (the same four levels, so the same
32x32x4 latents and code path, and ~40 encode/decode calls at 256 that cost seconds, not minutes, of a
2-core CI machine); the SD VAE's own configuration (83.7M parameters) is loaded and run once on its own.
"""

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import WARM
from lediflow.studies.ablations import flatten
from lediflow.pipeline.config import load_params

REPO = Path(__file__).resolve().parents[1]
TINY = "tests/presets/tiny256.yaml"
PRESETS = ("ffhq256", "afhq256", "lhq256")
# stabilityai/sd-vae-ft-ema's config.json (the architecture; weights random here)
SD_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [128, 256, 512, 512],
          "layers_per_block": 2, "act_fn": "silu", "latent_channels": 4, "norm_num_groups": 32,
          "sample_size": 256, "scaling_factor": 0.18215}
# The DAG test's stand-in: SD_VAE's blocks and latent channels, 1/4-1/8 of its widths, one layer per block.
NARROW_VAE = {**SD_VAE, "block_out_channels": [32, 32, 64, 64], "layers_per_block": 1}


def _save_vae(folder: Path, config: dict) -> Path:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(**config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sd_vae(tmp_path_factory) -> Path:
    return _save_vae(tmp_path_factory.mktemp("sd-vae"), SD_VAE)


@pytest.fixture(scope="module")
def narrow_vae(tmp_path_factory) -> Path:
    return _save_vae(tmp_path_factory.mktemp("narrow-vae"), NARROW_VAE)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """16 smooth 256x256 RGB images (gradients and blobs, not noise: the flips and the VAE see structure)."""
    root = tmp_path_factory.mktemp("images256")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    for i in range(16):
        cx, cy, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.1, 0.3)]
        blob = ((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2)[..., None]
        base = np.stack([xx * rng.uniform(), yy * rng.uniform(), (1 - xx) * rng.uniform()], -1)
        image = np.where(blob, rng.uniform(0, 1, 3), base)
        Image.fromarray((image * 255).astype(np.uint8)).save(root / f"img{i:03d}.png")
    return root


def _overlay(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def _snakemake(*args: str, warm: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([*(WARM if warm else []), sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=REPO, capture_output=True, text=True)


def test_the_presets_differ_only_in_name_and_data_source():
    flat = {name: flatten(load_params([f"configs/{name}.yaml"])) for name in PRESETS}
    for name in PRESETS[1:]:
        differ = {k for k in flat["ffhq256"] if flat["ffhq256"][k] != flat[name][k]}
        assert differ == {"run.name", "data.source"}, name


def test_the_sd_vae_configuration_loads_and_maps_256_to_32x32x4(sd_vae: Path):
    """What the DAG test's narrow stand-in leaves out: the SD VAE's own size, through the pretrained loader."""
    import torch

    from lediflow.method.autoencoder import latent_shape, load_pretrained

    vae = load_pretrained(str(sd_vae), None, torch.device("cpu"))
    assert sum(p.numel() for p in vae.parameters()) > 80e6  # the SD VAE, not a stand-in
    assert latent_shape(vae, 256) == (4, 32, 32)
    with torch.no_grad():
        z = vae.encode(torch.rand(1, 3, 256, 256) * 2 - 1).latent_dist.mean
        assert z.shape == (1, 4, 32, 32) and vae.decode(z).sample.shape == (1, 3, 256, 256)


@pytest.mark.slow
def test_the_ffhq256_preset_runs_its_whole_dag_at_256_on_a_cpu(tmp_path: Path, narrow_vae: Path, images: Path):
    results = tmp_path / "results"
    overlay = _overlay(tmp_path, run={"results_dir": str(results)}, data={"path": str(images)},
                       autoencoder={"pretrained": str(narrow_vae)})
    result = _snakemake("--configfile", "configs/ffhq256.yaml", TINY, str(overlay), warm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    run = results / "ffhq256"
    assert np.load(run / "data" / "train.npy", mmap_mode="r").shape[1:] == (3, 256, 256)
    assert np.load(run / "latents" / "train_mean.npy", mmap_mode="r").shape[1:] == (4, 32, 32)
    arch = {space: json.loads((run / "models" / f"flow-{space}-gaussian" / "arch.json").read_text())
            for space in ("pixel", "latent")}
    assert arch["pixel"]["arch"]["patch_size"] == 16 and arch["latent"]["arch"]["patch_size"] == 2
    # the preset's bf16 and flips reached the trained models and the fixed-grid sampler
    manifest = json.loads((run / "models" / "flow-pixel-learned" / "manifest.json").read_text())
    assert manifest["numerics"]["precision"] == "bf16" and manifest["fingerprint"]["hflip"] is True
    record = json.loads((run / "samples" / "flow-latent-learned" / "euler-1" / "record.json").read_text())
    assert record["precision"] == "bf16"
    scores = json.loads((run / "scores" / "flow-latent-learned" / "euler-1.json").read_text())
    assert np.isfinite(scores["fid"]) and scores["num_samples"] == 4
    assert (run / "tables" / "quality_vs_nfe.md").is_file() and (run / "scores" / "autoencoder_floor.json").is_file()


@pytest.mark.parametrize("preset, kind", [("afhq256", "zip"), ("lhq256", "tar")])
def test_afhq_and_lhq_read_their_archives(tmp_path: Path, images: Path, preset: str, kind: str):
    archive = tmp_path / f"{preset}.{kind}"
    files = sorted(images.glob("*.png"))
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as handle:
            for f in files:
                handle.write(f, f"{preset}/train/{f.name}")
    else:
        with tarfile.open(archive, "w") as handle:
            for f in files:
                handle.add(f, f"{preset}/{f.name}")
    out = subprocess.run([sys.executable, "-m", "lediflow.cli", "prepare-data", "--config", f"configs/{preset}.yaml",
                          "--config", TINY, "--set", f"run.results_dir={tmp_path / 'results'}", "--set",
                          f"data.path={archive}"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "results" / preset / "data" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 12, "test": 4} and manifest["shape"] == [3, 256, 256]
    assert manifest["source_location"]["how"] == "path-archive"


def test_a_dry_run_of_a_preset_writes_nothing(tmp_path: Path):
    results = tmp_path / "results"
    result = _snakemake("-n", "--configfile", "configs/ffhq256.yaml", str(_overlay(tmp_path, run={
        "results_dir": str(results)})))
    assert result.returncode == 0, result.stderr
    assert "train_flow" in result.stdout and not results.exists()


def test_a_hub_vae_without_network_fails_in_one_line_naming_the_fix(tmp_path: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # no network, empty cache
    out = subprocess.run([sys.executable, "-m", "lediflow.cli", "train-autoencoder", "--config",
                          "configs/ffhq256.yaml", "--set", "run.device=cpu", "--set",
                          f"run.results_dir={tmp_path / 'results'}"], cwd=REPO, capture_output=True, text=True,
                         env=env)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "stabilityai/sd-vae-ft-ema" in lines[0]
    assert "set autoencoder.pretrained to a local folder" in lines[0]
