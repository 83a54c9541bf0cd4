"""Gaussian baseline, OT-CFM and LeDiFlow side by side (lediflow/studies/methods.py, workflow/methods.smk)."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lediflow.studies import methods

REPO = Path(__file__).resolve().parents[1]


def _lediflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lediflow.cli", *args], cwd=REPO, capture_output=True, text=True)


def _curve(prior: str, fids: list[float], se: float = 1.0) -> list[dict]:
    return [{"space": "pixel", "prior": prior, "solver": "euler", "steps": n, "tol": None, "setting": f"euler-{n}",
             "nfe": float(n), "ms_per_image": float(n), "fid": f, "fid_se": se, "kid_mean": f / 100,
             "kid_se": se / 100, "cmmd": math.nan, "mmd_inception": f / 10, "precision": math.nan,
             "recall": math.nan, "run": "r", "timed_on": "cpu"} for n, f in zip((1, 2, 4, 8), fids)]


def test_ledi_is_compared_with_each_gaussian_source_and_ot_with_the_gaussian_baseline():
    scores = pd.DataFrame(_curve("gaussian", [200.0, 120.0, 80.0, 80.5]) + _curve("ot", [150.0, 100.0, 85.0, 80.0])
                          + _curve("learned", [60.0, 50.0, 45.0, 40.0]))
    table = methods.comparisons_table(scores)
    assert list(zip(table["method"], table["against"])) == [
        (methods.METHODS["learned"], methods.METHODS["gaussian"]), (methods.METHODS["learned"], methods.METHODS["ot"]),
        (methods.METHODS["ot"], methods.METHODS["gaussian"])]
    ledi_vs_gauss, ledi_vs_ot, ot_vs_gauss = (table.iloc[i] for i in range(3))
    assert ledi_vs_gauss["best / best"] == pytest.approx(80.0 / 40.0) and ledi_vs_ot["best / best"] == 2.0
    assert ledi_vs_ot["Euler 1"] == pytest.approx(150.0 / 60.0) and ot_vs_gauss["Euler 1"] == pytest.approx(200 / 150)
    # LeDiFlow's first point (60) already beats the baselines' best (80): a bound, and never reached by them
    assert ledi_vs_gauss["bound"] == ">=" and ledi_vs_gauss["inverse bound"] == ">"
    # the baseline plateaus from 4 steps; OT-CFM reaches its best only at 8: half the speed, exactly
    assert ot_vs_gauss["NFE speedup"] == pytest.approx(0.5) and ot_vs_gauss["bound"] == "="


def test_the_default_runs_two_flows_make_a_table_and_mixed_runs_are_refused_in_one_line(tmp_path: Path):
    made = _lediflow("methods", "--runs", "results/default", "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    table = pd.read_csv(tmp_path / "methods.csv")
    assert list(table["space"]) == ["latent", "pixel"] and (table["against"] == methods.METHODS["gaussian"]).all()
    assert (tmp_path / "methods_fid_vs_nfe.png").is_file()
    copy = tmp_path / "default-copy"  # the same flows a second time
    for part in ("scores", "timing"):
        shutil.copytree(REPO / "results/default" / part, copy / part)
    shutil.copyfile(REPO / "results/default/params.yaml", copy / "params.yaml")
    twice = _lediflow("methods", "--runs", "results/default", str(copy), "--out", str(tmp_path))
    assert twice.returncode != 0 and "two runs hold flow-" in twice.stderr and "Traceback" not in twice.stderr
    other = _lediflow("methods", "--runs", "results/default", "results/smoke", "--out", str(tmp_path))
    assert other.returncode != 0 and "differ in" in other.stderr and len(other.stderr.strip().splitlines()) == 1


def test_an_ot_cfm_run_of_another_training_budget_is_refused_in_one_line(tmp_path: Path):
    """A method trained 32x longer is not at equal compute: joining it with the x1 flows must fail, naming why."""
    arm = tmp_path / "otcfm-latent-x1-s0"
    shutil.copytree(REPO / "results/otcfm-latent-x1-s0", arm)
    params = yaml.safe_load((arm / "params.yaml").read_text())
    params["run"]["train_scale"] = 32.0
    (arm / "params.yaml").write_text(yaml.safe_dump(params))
    made = _lediflow("methods", "--runs", "results/default", str(arm), "--out", str(tmp_path / "out"))
    assert made.returncode != 0 and "Traceback" not in made.stderr
    assert "differ in training budget (run.train_scale)" in made.stderr and len(made.stderr.strip().splitlines()) == 1


def test_the_methods_workflow_plans_each_arm_as_an_ordinary_run():
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/methods.smk", "-n", "-p", "--forceall"],
                          cwd=REPO, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    arm = yaml.safe_load((REPO / "configs/methods/otcfm-pixel.yaml").read_text())
    assert arm["flow"]["priors"] == ["ot"]
    assert "--configfile configs/methods/otcfm-pixel.yaml" in plan.stdout  # the arm: the main Snakefile, overlaid
    assert "lediflow methods --runs results/default results/otcfm-pixel-x1-s0 results/otcfm-latent-x1-s0" in plan.stdout
    # the latent arm loads the default run's autoencoder, which the study makes first with the default run's rule
    assert "snakemake results/default/models/autoencoder/manifest.json" in plan.stdout
    # the OT-pairing measurement reads the default run's priors only (made by their own rules, no flow trained)
    assert "lediflow ot-pairing --config results/default/params.yaml --batches 20 --out results/methods" in plan.stdout
    assert "snakemake results/default/models/prior-pixel/manifest.json" in plan.stdout


def test_an_arm_added_to_the_study_runs_although_the_methods_table_exists(tmp_path: Path):
    """A study folder whose methods table and pixel arm are made, and whose latent arm is new: the arm runs."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "configs" / "methods", tmp_path / "configs" / "methods")
    made = ["results/methods/methods.md", "results/methods/methods.csv", "results/methods/ot_pairing.md",
            "results/methods/ot_pairing.csv", "results/default/tables/scores_long.csv",
            "results/otcfm-pixel-x1-s0/tables/scores_long.csv", "results/default/models/autoencoder/manifest.json",
            *(f"results/default/models/{kind}-{space}/manifest.json"
              for space in ("pixel", "latent") for kind in ("prior", "latent_sampler"))]
    for name in made:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("made before the arm was added\n")
    again = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow/methods.smk"), "-n",
                            "-d", str(tmp_path), "--config", "arms=[otcfm-pixel, otcfm-latent]"], cwd=REPO,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "output: results/otcfm-latent-x1-s0/tables/scores_long.csv" in again.stdout
    assert "output: results/otcfm-pixel-x1-s0/tables/scores_long.csv" not in again.stdout  # made: left alone
    assert "reason: Input files updated by another job" in again.stdout  # the methods table follows


def _run_folder(root: Path, name: str, **sections) -> Path:
    from lediflow.pipeline.config import deep_merge

    params = deep_merge(yaml.safe_load((REPO / "results/default/params.yaml").read_text()),
                        {"run": {"name": name}, **sections})
    (root / name).mkdir(parents=True)
    (root / name / "params.yaml").write_text(yaml.safe_dump(params))
    return root / name


def test_a_latent_arm_on_the_default_runs_autoencoder_shares_its_latent_space(tmp_path: Path):
    from lediflow.pipeline.config import load_params

    def space(run: Path) -> tuple:
        return methods.latent_space(run, load_params([run / "params.yaml"]))

    default = _run_folder(tmp_path, "default")
    arm = yaml.safe_load((REPO / "configs/methods/otcfm-latent.yaml").read_text())
    shared = _run_folder(tmp_path, "otcfm-latent", autoencoder=arm["autoencoder"], flow=arm["flow"])
    retrained = _run_folder(tmp_path, "wider", autoencoder={"block_out_channels": [64, 64, 64]})
    elsewhere = _run_folder(tmp_path, "sd", autoencoder={"source": "pretrained", "pretrained": "/models/sd-vae"})
    assert space(shared) == space(default)  # the arm's relative path names the default run beside it
    assert space(retrained) != space(default) and space(elsewhere) != space(default)
    copy = tmp_path / "copy"  # a latent run whose autoencoder differs: refused before any cell is read
    shutil.copytree(REPO / "results/default/scores", copy / "scores")
    shutil.copyfile(retrained / "params.yaml", copy / "params.yaml")
    refused = _lediflow("methods", "--runs", "results/default", str(copy), "--out", str(tmp_path / "out"))
    assert refused.returncode != 0 and "differ in latent space (autoencoder)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_study_never_plans_to_remake_a_default_run_file_that_exists(tmp_path: Path):
    """The default run's autoencoder, priors and tables belong to the main Snakefile: where they exist, the study
    declares no rule for them (a second owner would make Snakemake delete a trained network to make it again)."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "configs" / "methods", tmp_path / "configs" / "methods")
    made = [tmp_path / "results/default/tables/scores_long.csv",
            tmp_path / "results/default/models/autoencoder/manifest.json",
            *(tmp_path / f"results/default/models/{kind}-{space}/manifest.json"
              for space in ("pixel", "latent") for kind in ("prior", "latent_sampler"))]
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")

    def plan() -> str:
        done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow/methods.smk"), "-n",
                               "-d", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    planned = plan()
    assert "default_autoencoder" not in planned and "default_priors" not in planned and "default_run" not in planned
    assert "rule ot_pairing" in planned and "otcfm-latent-x1-s0" in planned  # the study's own jobs still run
    (made[1]).unlink()  # a missing one is made, by the main Snakefile's rule
    assert "localrule default_autoencoder" in plan() or "rule default_autoencoder" in plan()
