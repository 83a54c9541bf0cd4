"""Precision/recall over seeds at each flow's best cell (lediflow.studies.seed_quality): a toy study of three seeds
with known precision/recall, the re-made arm's params check, and the repository's own study file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from lediflow.cli import main
from lediflow.core import artifacts
from lediflow.core.errors import LediflowError
from lediflow.pipeline.config import load_params
from lediflow.studies import seed_quality

REPO = Path(__file__).resolve().parents[1]
CELLS = {"gaussian": "euler-16", "learned": "euler-2"}
# (precision, recall) per seed and prior: LeDiFlow ahead in precision by 0.2, 0.18, 0.22 (resolved over three
# seeds), in recall by 0.2, 0, 0 (not resolved)
PR = {0: {"gaussian": (0.3, 0.2), "learned": (0.5, 0.4)}, 1: {"gaussian": (0.3, 0.2), "learned": (0.48, 0.2)},
      2: {"gaussian": (0.2, 0.3), "learned": (0.42, 0.3)}}


def _run(root: Path, name: str, seed: int, scored: bool) -> None:
    params = load_params([], [f"run.name={name}", f"run.seed={seed}", f"run.results_dir={root}",
                              "flow.spaces=[pixel]"])
    (root / name).mkdir(parents=True)
    (root / name / "params.yaml").write_text(yaml.safe_dump(params))
    for prior, setting in CELLS.items() if scored else ():
        steps = int(setting.split("-")[1])
        precision, recall = PR[seed][prior]
        score = {"setting": setting, "fid": 50.0 + seed, "fid_se": 1.0, "kid_mean": 0.05, "cmmd": "unavailable",
                 "mmd_inception": 0.5, "num_samples": 1000, "precision": precision, "recall": recall,
                 "sampling": {"space": "pixel", "prior": prior, "solver": "euler", "steps": steps, "tol": None,
                              "nfe": steps, "latent_sampler_nfe": 64, "seconds_per_image": {"total": 0.01}}}
        path = root / name / "scores" / f"flow-pixel-{prior}" / f"{setting}.json"
        path.parent.mkdir(parents=True)
        artifacts.write_sealed_json(path, score)


def _study(tmp_path: Path, made: tuple[int, ...] = (1, 2)) -> dict:
    root = tmp_path / "results"
    _run(root, "base", 0, scored=True)
    rows = []
    for seed in (0, 1, 2):
        study_run = "base" if seed == 0 else f"study-s{seed}"
        if seed:
            _run(root, study_run, seed, scored=False)  # made before precision/recall: no scores needed here
            _run(root, f"seeds-s{seed}", seed, scored=seed in made)
            (tmp_path / f"s{seed}.yaml").write_text(yaml.safe_dump(
                {"run": {"name": f"seeds-s{seed}", "seed": seed, "results_dir": str(root)},
                 "flow": {"spaces": ["pixel"]}}))
        rows.append({"run": study_run, "space": "pixel", "seed": seed, "baseline_best_at": CELLS["gaussian"],
                     "ledi_best_at": CELLS["learned"], "baseline_best_fid": 52.0 + seed, "baseline_best_fid_se": 1.0,
                     "ledi_best_fid": 50.0 + seed, "ledi_best_fid_se": 1.0})
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"run": {"results_dir": str(root)}}))
    spec = {"configs": [str(tmp_path / "base.yaml")], "runs_table": str(tmp_path / "runs.csv"),
            "out": str(tmp_path / "out"), "seed0": "base",
            "arms": [{"config": str(tmp_path / f"s{seed}.yaml"), "remakes": f"study-s{seed}"} for seed in (1, 2)]}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec))
    return spec


def test_precision_and_recall_over_three_seeds_are_means_with_t_intervals_and_paired_differences(tmp_path: Path):
    spec = _study(tmp_path)
    assert main(["seed-quality", "--study", str(tmp_path / "study.yaml")]) in (0, None)
    long = pd.read_csv(tmp_path / "out" / "seeds_long.csv")
    assert sorted(long["seed"].unique()) == [0, 1, 2] and len(long) == 6
    # each row carries the study's FID of the cell it re-made beside its own
    assert (long["study_fid"] - long["fid"]).abs().max() > 0
    frame, missing = seed_quality.write(spec)
    assert missing == []
    learned = frame[frame["row"] == seed_quality.METHODS["learned"]].iloc[0]
    assert learned["precision"] == pytest.approx(0.4667, abs=1e-4) and learned["seeds"] == "3 seeds"
    difference = frame[frame["row"].str.startswith("LeDiFlow -")].iloc[0]
    half = stats.t.ppf(0.975, 2) * pd.Series([0.2, 0.18, 0.22]).std(ddof=1) / 3 ** 0.5
    assert difference["precision"] == pytest.approx(0.2) and difference["precision ci"] == pytest.approx(half)
    assert (difference["precision resolved"], difference["recall resolved"]) == ("yes", "not resolved")
    assert "3 seeds" in (tmp_path / "out" / "seeds.md").read_text()


def test_runs_not_yet_made_are_named_and_left_out(tmp_path: Path):
    spec = _study(tmp_path, made=(1,))
    frame, missing = seed_quality.write(spec)
    assert missing == ["seeds-s2"]
    assert set(frame["seeds"]) == {"2 seeds"}
    assert "Not yet made: seeds-s2" in (tmp_path / "out" / "seeds.md").read_text()


def test_an_arm_whose_params_differ_from_the_run_it_re_makes_is_refused(tmp_path: Path):
    spec = _study(tmp_path)
    arm = Path(spec["arms"][0]["config"])
    overlay = yaml.safe_load(arm.read_text())
    arm.write_text(yaml.safe_dump(overlay | {"prior": {"kl_weight": 0.001}}))
    with pytest.raises(LediflowError, match="does not re-make study-s1: their prior sections differ"):
        seed_quality.targets(spec)
    assert main(["seed-quality", "--study", str(tmp_path / "study.yaml")]) == 1  # one line, no traceback


def test_the_repository_study_re_makes_each_x1_seed_arm_at_its_best_cells(monkeypatch):
    monkeypatch.chdir(REPO)  # paths in the study file are relative to the repository root, as for snakemake
    targets = seed_quality.targets(seed_quality.load_spec("configs/seeds/study.yaml"))
    assert sorted(targets) == sorted(f"seeds-{space}-x1-s{seed}" for space in ("pixel", "latent") for seed in (1, 2))
    runs = pd.read_csv("results/scaling/scaling_runs.csv").set_index("run")
    cells = [Path(path).relative_to(f"results/seeds-latent-x1-s2/scores").as_posix()
             for path in targets["seeds-latent-x1-s2"]]
    made = runs.loc["scaling-latent-x1-s2"]
    assert cells == [f"flow-latent-gaussian/{made['baseline_best_at']}.json",
                     f"flow-latent-learned/{made['ledi_best_at']}.json"]


def test_the_seeds_workflow_makes_each_arm_as_an_ordinary_run_of_its_best_cells_then_the_table():
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/seeds.smk", "-n", "-p", "--forceall"],
                          cwd=REPO, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    arm = ("snakemake results/seeds-pixel-x1-s1/scores/flow-pixel-gaussian/euler-16.json "
           "results/seeds-pixel-x1-s1/scores/flow-pixel-learned/euler-2.json --cores")
    assert arm in plan.stdout
    assert "--configfile params.yaml configs/scaling/budget.yaml configs/seeds/pixel-x1-s1.yaml" in plan.stdout
    assert "lediflow seed-quality --study configs/seeds/study.yaml" in plan.stdout
