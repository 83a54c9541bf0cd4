"""The pipeline as a user meets it: snakemake and dvc on the smoke config."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lediflow import artifacts

REPO = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=cwd, capture_output=True, text=True)


def overlay(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.fixture
def smoke_overlay(tmp_path: Path) -> Path:
    return overlay(tmp_path, run={"results_dir": str(tmp_path / "results")})


@pytest.mark.parametrize("configs", [[], ["configs/smoke.yaml"]])
def test_dry_run_lists_jobs(configs, smoke_overlay):
    # --configfile takes several files at once; repeating the flag would keep only the last.
    result = snakemake("-n", "--configfile", *configs, str(smoke_overlay))
    assert result.returncode == 0, result.stderr
    assert "prepare_data" in result.stdout + result.stderr


def test_smoke_pipeline_through_snakemake(tmp_path: Path, smoke_overlay):
    result = snakemake("--configfile", "configs/smoke.yaml", str(smoke_overlay))
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "results" / "smoke"
    folder = run / "data"
    assert np.load(folder / "train.npy", mmap_mode="r").shape == (2000, 1, 32, 32)
    assert artifacts.verify_manifest(folder) == []
    models = ["flow-pixel-gaussian", "flow-pixel-learned", "flow-latent-gaussian", "flow-latent-learned"]
    for name in ["autoencoder", "prior-pixel", "latent_sampler-pixel", "prior-latent", "latent_sampler-latent", *models]:
        assert artifacts.verify_manifest(run / "models" / name) == [], name
    gaussian = artifacts.read_manifest(run / "models" / "flow-pixel-gaussian")["training"]
    learned = artifacts.read_manifest(run / "models" / "flow-pixel-learned")["training"]
    assert gaussian["step"] == learned["step"] + 10  # baseline_extra_steps of the smoke config
    latents = artifacts.read_manifest(run / "latents")
    assert latents["latent_shape"] == [4, 8, 8] and latents["test_psnr_db"] > 0
    for space in ("pixel", "latent"):
        report = json.loads((run / "prior_report" / space / "report.json").read_text())
        assert report["mse_paired_x0"] < report["mse_gaussian_x0"], space
        assert (run / "prior_report" / space / "prior_grid.png").stat().st_size > 0
    for model in models:
        for setting, nfe in (("euler-1", 1), ("euler-4", 4)):
            cell = run / "samples" / model / setting
            record = json.loads((cell / "record.json").read_text())
            assert record["nfe"] == nfe and record["num_samples"] == 32
            assert (record["latent_sampler_nfe"] > 0) == model.endswith("learned")
            assert (record["seconds_per_image"]["decode"] > 0) == ("latent" in model)
            assert np.load(cell / "samples.npy").shape == (32, 1, 32, 32)  # decoded to images
        assert json.loads((run / "samples" / model / "dopri5-0.001" / "record.json").read_text())["nfe"] >= 8
        for setting in ("euler-1", "euler-4", "dopri5-0.001"):
            scored = json.loads((run / "scores" / model / f"{setting}.json").read_text())
            assert scored["fid"] > 0 and scored["num_samples"] == 32 and scored["num_reference"] == 100
            assert scored["cmmd"] == "unavailable (no CLIP weights)"  # offline, clip_download false
    assert (run / "extras" / "interpolation" / "interpolation.png").is_file()
    assert json.loads((run / "extras" / "inpainting" / "metrics.json").read_text())["images"] == 4
    # A second run has nothing to do.
    again = snakemake("--configfile", "configs/smoke.yaml", str(smoke_overlay))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_snakefile_rejects_bad_params_before_any_job(tmp_path: Path):
    bad = overlay(tmp_path, run={"results_dir": str(tmp_path / "results")}, data={"on_bad_image": "ignore"})
    result = snakemake("-n", "--configfile", str(bad))
    assert result.returncode == 2
    assert "lediflow: error: params error: data.on_bad_image = 'ignore'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_run_names_do_not_collide(tmp_path: Path):
    for name in ("a", "b"):
        cfg = overlay(tmp_path, run={"name": name, "results_dir": str(tmp_path / "results")},
                      data={"max_train": 10 if name == "a" else 20, "max_test": 5})
        assert snakemake("prepare_data", "--configfile", str(cfg)).returncode == 0
    assert np.load(tmp_path / "results/a/data/train.npy").shape[0] == 10
    assert np.load(tmp_path / "results/b/data/train.npy").shape[0] == 20
