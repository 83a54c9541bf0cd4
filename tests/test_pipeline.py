"""The pipeline as a user meets it: snakemake and dvc on the smoke config."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import WARM, copy_run, flip_byte, results_dir_setting
from lediflow.core import artifacts


REPO = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path = REPO, warm: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([*(WARM if warm else []), sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=cwd, capture_output=True, text=True)


def overlay(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.fixture
def smoke_overlay(tmp_path: Path) -> Path:
    return overlay(tmp_path, run={"results_dir": str(tmp_path / "results")})


EXPECTED_JOBS = {"prepare_data": 1, "train_autoencoder": 1, "encode_latents": 1, "train_prior": 2,
                 "train_latent_sampler": 2, "train_flow": 4, "reference_features": 1, "time_cells": 2,
                 "autoencoder_floor": 1, "tables": 1}


def _job_counts(text: str) -> dict[str, int]:
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts.setdefault(parts[0], int(parts[1]))
    return counts


# cells: 4 models x their shared settings + the baselines' extra Euler steps + 2 zero-step cells per learned model
@pytest.mark.parametrize("configs, cells", [
    ([], 4 * 9 + 2 * 2 + 2 * 2), (["configs/smoke.yaml"], 4 * 3 + 2 + 2 * 2),
    (["configs/ffhq256.yaml"], 4 * 16 + 2 * 2), (["configs/afhq256.yaml"], 4 * 16 + 2 * 2),
    (["configs/lhq256.yaml"], 4 * 16 + 2 * 2),
])
def test_dry_run_lists_the_expected_jobs(configs, cells, smoke_overlay):
    # --configfile takes several files at once; repeating the flag would keep only the last.
    result = snakemake("-n", "--configfile", *configs, str(smoke_overlay))
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout + result.stderr)
    for job, count in EXPECTED_JOBS.items():
        assert counts.get(job) == count, (job, counts)
    assert counts["sample"] == cells and counts["score"] == cells


def _damage_and_rebuild(run: Path, smoke_overlay: Path) -> None:
    """Each kind of artifact damaged after the run: its reader gives one line and moves it aside; damage no
    stage has read yet is found by the snakemake call itself before it plans; one call (targeting those files,
    so the test stays short) rebuilds every one of them."""
    cell = ("--model", "flow-pixel-learned", "--setting", "euler-4")
    cases = [  # (file, how, the stage that reads it)
        (run / "samples" / "flow-pixel-learned" / "euler-4" / "samples.npy", "truncate", ["score", *cell]),
        # another cell: the first case's samples are gone, and the reader would stop at them
        (run / "reference" / "inception-train.npy", "flip",
         ["score", "--model", "flow-latent-gaussian", "--setting", "euler-1"]),
        (run / "models" / "flow-pixel-learned" / "model.safetensors", "flip", ["sample", *cell]),
        (run / "scores" / "flow-pixel-gaussian" / "euler-1.json", "json", ["tables"]),
    ]
    for path, how, stage in cases:
        data = bytearray(path.read_bytes())
        if how == "truncate":
            path.write_bytes(bytes(data[: len(data) // 2]))
        elif how == "flip":
            flip_byte(path)
        else:
            path.write_bytes(b'{"fid": ')
        result = subprocess.run([sys.executable, "-m", "lediflow.cli", stage[0], "--config",
                                 str(run / "params.yaml"), *stage[1:]], cwd=REPO, capture_output=True, text=True)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and f"{path} is damaged" in lines[0], result.stderr
        assert path.with_name(path.name + ".damaged").is_file() and not path.exists()
    # damaged with no stage reading them first: the snakemake call itself finds them before it plans
    unread = [run / "samples" / "flow-pixel-gaussian" / "euler-4" / "samples.npy",
              run / "scores" / "flow-latent-learned" / "euler-4.json"]
    before = {path: path.read_bytes() for path in unread}
    flip_byte(unread[0])
    score = json.loads(unread[1].read_text())
    unread[1].write_text(json.dumps({**score, "fid": score["fid"] + 0.5}))
    targets = [str(path) for path, _, _ in cases[:3]] + [str(run / "scores" / "flow-pixel-learned" / "euler-4.json"),
                                                          str(cases[3][0]), str(unread[1]),
                                                          str(run / "scores" / "flow-pixel-gaussian" / "euler-4.json")]
    rebuilt = snakemake(*targets, "--configfile", "configs/smoke.yaml", str(smoke_overlay))
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    for path in unread:  # one call: set aside (one line each) and re-made as before
        assert f"lediflow: {path} is damaged" in rebuilt.stderr and "this snakemake call rebuilds it" in rebuilt.stderr
    assert unread[0].read_bytes() == before[unread[0]]
    assert artifacts.read_sealed_json(unread[1])["fid"] == score["fid"]
    for path, _, _ in cases:  # rebuilt and verified: the arrays and weights by their manifests, the score by its seal
        if path.suffix == ".json":
            assert artifacts.read_sealed_json(path)["fid"] > 0
        else:
            assert artifacts.verify_file(path) == path
    assert json.loads(cases[3][0].read_text())["fid"] > 0


@pytest.mark.slow
def test_smoke_pipeline_through_snakemake(tmp_path: Path, smoke_results: Path, dataframe_regression):
    """The finished smoke run (`snakemake --cores 2 --configfile configs/smoke.yaml`, made once per session by
    the `smoke_results` fixture or by CI's smoke step): every artifact, the golden tables, then a second run,
    an equal-compute change planned against it, and a damaged-artifact rebuild on a copy."""
    run = smoke_results / "smoke"
    smoke_overlay = overlay(tmp_path, run={"results_dir": results_dir_setting(smoke_results)})
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
    # Tables: the numbers of the smoke run are golden (deterministic on CPU; regenerate only on purpose
    # with `pytest --force-regen`). Timings are not compared: they are measurements, not results.
    for name in ("quality_vs_nfe", "speedup", "quality_ratio", "headline"):
        for suffix in (".md", ".csv", ".tex"):
            assert (run / "tables" / f"{name}{suffix}").stat().st_size > 0
    long = pd.read_csv(run / "tables" / "scores_long.csv")
    golden = long[["space", "prior", "solver", "setting", "nfe", "latent_sampler_nfe", "fid", "kid_mean",
                   "mmd_inception"]].sort_values(["space", "prior", "setting"]).reset_index(drop=True)
    # KID (a mean over random feature subsets of a cubic kernel) moves 1.2e-3 relative between CPU kinds
    # (AMD EPYC golden, Intel Xeon) where FID stays inside 1e-3.
    dataframe_regression.check(golden, default_tolerance={"rtol": 1e-3, "atol": 1e-6},
                               tolerances={"kid_mean": {"rtol": 5e-3, "atol": 1e-6}})
    for space in ("pixel", "latent"):
        assert (run / "figures" / f"quality_vs_nfe_{space}.pdf").stat().st_size > 0
        assert (run / "figures" / f"equal_nfe_{space}.png").stat().st_size > 0  # both flows, same seeds
    # Every job leaves a Snakemake benchmark (wall time, peak RSS) beside its log.
    bench = pd.read_csv(run / "benchmarks" / "train_flow-pixel-learned.tsv", sep="\t")
    assert bench["max_rss"].iloc[0] > 0 and bench["s"].iloc[0] > 0
    # The HTML report opens with the tables and figures.
    report = tmp_path / "report.html"
    made = snakemake("--report", str(report), "--configfile", "configs/smoke.yaml", str(smoke_overlay))
    assert made.returncode == 0, made.stderr[-3000:]
    html = report.read_text(errors="ignore")
    assert "quality_vs_nfe" in html and "headline" in html
    # A second run has nothing to do.
    again = snakemake("--configfile", "configs/smoke.yaml", str(smoke_overlay))
    assert "Nothing to be done" in again.stdout + again.stderr
    # Raising the baseline's extra steps (equal compute) re-trains the two Gaussian flows only:
    # the learned flows and their sample cells are untouched.
    (tmp_path / "longer").mkdir()
    longer = overlay(tmp_path / "longer", run={"results_dir": results_dir_setting(smoke_results)},
                     flow={"baseline_extra_steps": 20})
    plan = snakemake("-n", "--configfile", "configs/smoke.yaml", str(longer))
    assert plan.returncode == 0, plan.stderr
    counts = _job_counts(plan.stdout + plan.stderr)
    assert counts["train_flow"] == 2 and counts["sample"] == 2 * 4 and counts["score"] == 2 * 4, counts
    assert "prior=learned" not in plan.stdout + plan.stderr
    (tmp_path / "copy").mkdir()
    copy = copy_run(smoke_results, tmp_path / "copy" / "results")
    _damage_and_rebuild(copy / "smoke", overlay(tmp_path / "copy", run={"results_dir": str(copy)}))


@pytest.mark.slow
def test_switching_the_learned_coupling_re_trains_the_learned_flows_alone_on_ot_paired_prior_draws(
        tmp_path: Path, smoke_results: Path):
    """flow.learned_coupling: ot_draws (the coupling study's switch) is planned against the finished smoke run as
    the two learned flows and what they feed, then made on a copy: the flow now trains from the latent sampler's
    draws too, and its fingerprint says so."""
    switch = {"flow": {"learned_coupling": "ot_draws"}}
    plan = snakemake("-n", "--configfile", "configs/smoke.yaml",
                     str(overlay(tmp_path, run={"results_dir": results_dir_setting(smoke_results)}, **switch)))
    assert plan.returncode == 0, plan.stderr[-2000:]
    counts = _job_counts(plan.stdout + plan.stderr)
    assert counts["train_flow"] == 2 and "train_prior" not in counts and "train_latent_sampler" not in counts, counts
    assert "prior=gaussian" not in plan.stdout + plan.stderr
    copy = copy_run(smoke_results, tmp_path / "copy" / "results")
    (tmp_path / "copy" / "switch").mkdir()
    # a copy has no Snakemake records of its own (they are kept by output path), so the flow is re-made by name
    made = snakemake(str(copy / "smoke" / "models" / "flow-pixel-learned" / "manifest.json"), "--forcerun",
                     "train_flow", "--configfile", "configs/smoke.yaml",
                     str(overlay(tmp_path / "copy" / "switch", run={"results_dir": str(copy)}, **switch)))
    assert made.returncode == 0, made.stderr[-2000:]
    flow = copy / "smoke" / "models" / "flow-pixel-learned"
    fingerprint = artifacts.read_manifest(flow)["fingerprint"]
    assert fingerprint["coupling"] == "ot_draws" and fingerprint["latent_sampler_model"]
    paired = smoke_results / "smoke" / "models" / "flow-pixel-learned" / "model.safetensors"
    assert artifacts.sha256_file(flow / "model.safetensors") != artifacts.sha256_file(paired)
    assert "coupling" not in artifacts.read_manifest(paired.parent)["fingerprint"]  # the default keeps its identity


def test_snakefile_rejects_bad_params_before_any_job(tmp_path: Path):
    bad = overlay(tmp_path, run={"results_dir": str(tmp_path / "results")}, data={"on_bad_image": "ignore"})
    result = snakemake("-n", "--configfile", str(bad))
    assert result.returncode == 2
    assert "lediflow: error: params error: data.on_bad_image = 'ignore'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_dry_run_writes_nothing_and_takes_nested_config_values(tmp_path: Path, smoke_overlay):
    # Snakemake hands `--config 'sample={num_samples: 8}'` over as strings; they are read as the schema's types.
    result = snakemake("-n", "--configfile", "configs/smoke.yaml", str(smoke_overlay), "--config",
                       "sample={num_samples: 8, steps: [1, 2]}", "score={bootstrap_resamples: 5}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sample-flow-pixel-learned-euler-2" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()  # not even results/<run>/params.yaml


def _threads_by_rule(text: str) -> dict[str, set[int]]:
    threads, rule = {}, None
    for line in text.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("threads:") and rule:
            threads.setdefault(rule, set()).add(int(line.split()[1]))
    return threads


def test_the_gpu_profile_lets_training_and_sampling_jobs_share_the_machine(smoke_overlay):
    # On 16 cores the CPU layout (every GPU job claims all cores) ran the H200's jobs one at a time.
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "workflow/profiles/gpu",
                             "--cores", "16", "--configfile", "configs/smoke.yaml", str(smoke_overlay)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    threads = _threads_by_rule(result.stdout)
    assert threads["train_flow"] == {4} and threads["train_prior"] == {4} and threads["sample"] == {2}
    assert threads["time_cells"] == {16}  # timing still gets the machine to itself


def test_run_names_do_not_collide(tmp_path: Path):
    for name in ("a", "b"):
        cfg = overlay(tmp_path, run={"name": name, "results_dir": str(tmp_path / "results")},
                      data={"max_train": 10 if name == "a" else 20, "max_test": 5})
        assert snakemake("prepare_data", "--configfile", str(cfg)).returncode == 0
    assert np.load(tmp_path / "results/a/data/train.npy").shape[0] == 10
    assert np.load(tmp_path / "results/b/data/train.npy").shape[0] == 20


@pytest.mark.parametrize("arm", [*(f"configs/ablations/{name}.yaml" for name in (
    "reference", "prior_loss_nll", "prior_loss_beta_nll", "latent_sampler_gaussian", "std_scale_0.5", "std_scale_1.5")),
    "configs/coupling/coupling_paired.yaml", "configs/coupling/coupling_ot_draws.yaml"])
def test_ablation_arms_plan_learned_pixel_runs_at_the_budget(arm, smoke_overlay):
    name = Path(arm).stem
    result = snakemake("-n", "--configfile", "configs/ablations/budget.yaml", arm, str(smoke_overlay))
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout + result.stderr)
    assert counts["train_flow"] == 1 and counts["train_prior"] == 1 and "train_autoencoder" not in counts
    assert counts["sample"] == counts["score"] == 2 + 2  # euler 1 and 4, and the zero-step prior cells
    assert ("train_latent_sampler" in counts) == (name != "latent_sampler_gaussian")


def test_the_prior_design_study_plans_nine_arms_that_train_no_flow(smoke_overlay):
    result = snakemake("-s", "workflow/ablations.smk", "-n", "-p", "--forceall", "--config",
                       "studies=configs/prior_design/studies.yaml")
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout + result.stderr)
    assert counts["arm"] == 9 and counts["study"] == 1
    assert "snakemake prior_cells" in result.stdout + result.stderr
    arm = snakemake("prior_cells", "-n", "--configfile", "configs/prior_design/budget.yaml",
                    "configs/prior_design/prior_nll_kl1e-2.yaml", str(smoke_overlay))
    assert arm.returncode == 0, arm.stderr
    counts = _job_counts(arm.stdout + arm.stderr)
    assert "train_flow" not in counts and counts["train_prior"] == counts["train_latent_sampler"] == 1
    assert counts["sample"] == counts["score"] == 2 and counts["prior_report"] == 1


def test_the_backbone_study_plans_five_gaussian_arms_scored_without_tables(smoke_overlay):
    result = snakemake("-s", "workflow/ablations.smk", "-n", "-p", "--forceall", "--config",
                       "studies=configs/backbone/studies.yaml")
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout + result.stderr)
    assert counts["arm"] == 5 and counts["study"] == 2
    assert "snakemake scores" in result.stdout and "--cells scores" in result.stdout
    arm = snakemake("scores", "-n", "--configfile", "configs/backbone/budget.yaml",
                    "configs/backbone/bb_pixel_tiny_p2.yaml", str(smoke_overlay))
    assert arm.returncode == 0, arm.stderr
    counts = _job_counts(arm.stdout + arm.stderr)
    assert counts["train_flow"] == 1 and "train_prior" not in counts and "tables" not in counts
    assert counts["sample"] == counts["score"] == 7  # euler 4, 8, 16, 32 and midpoint 4, 8, 16


def test_ablation_workflow_plans_every_arm_once_and_a_table_per_study():
    result = snakemake("-s", "workflow/ablations.smk", "-n", "--forceall")  # independent of finished arms
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout + result.stderr)
    studies = yaml.safe_load((REPO / "configs/ablations/studies.yaml").read_text())["studies"]
    assert counts["arm"] == len({arm for arms in studies.values() for arm in arms})
    assert counts["study"] == len(studies)


@pytest.mark.slow
def test_ablation_workflow_runs_two_smoke_arms_into_one_table(tmp_path: Path):
    """The ablation workflow end to end on toy arms: each arm is a real run, the table lines them up."""
    from lediflow.pipeline.config import deep_merge

    smoke = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    budget = deep_merge(smoke, {"run": {"results_dir": str(tmp_path / "results")},
                                "flow": {"spaces": ["pixel"], "priors": ["learned"]},
                                "sample": {"steps": [1], "dopri5_tolerances": []}})
    (tmp_path / "budget.yaml").write_text(yaml.safe_dump(budget))
    for arm, scale in (("a", 0.5), ("b", 1.5)):
        (tmp_path / f"{arm}.yaml").write_text(yaml.safe_dump({"run": {"name": f"ablation-{arm}"},
                                                              "prior": {"std_scale": scale}}))
    studies = tmp_path / "studies.yaml"
    studies.write_text(yaml.safe_dump({"budget": str(tmp_path / "budget.yaml"), "arms_dir": str(tmp_path),
                                       "out": str(tmp_path / "out"), "studies": {"std_scale": ["a", "b"]}}))
    result = snakemake("-s", "workflow/ablations.smk", "--config", f"studies={studies}", warm=True)
    assert result.returncode == 0, result.stderr[-3000:]
    wide = pd.read_csv(tmp_path / "out" / "std_scale.csv").set_index("arm")
    assert list(wide["differs"]) == ["prior.std_scale=0.5", "prior.std_scale=1.5"]
    for arm in ("a", "b"):
        long = pd.read_csv(tmp_path / f"results/ablation-{arm}/tables/scores_long.csv").set_index("setting")
        assert set(long.index) == {"euler-1", "prior-x0", "prior-mean"}  # the prior's own cells come along
        for setting in long.index:
            # The cell prints FID to 2 decimals from the score; scores_long.csv keeps 6 digits, so compare
            # values (a FID of 298.135 may print as 298.14 from one and 298.13 from the other).
            cell_fid = float(wide.loc[f"ablation-{arm}", f"pixel {setting}"].split(" / ")[0])
            assert cell_fid == pytest.approx(long.loc[setting, "fid"], abs=0.0051)
