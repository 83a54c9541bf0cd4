"""The autoencoder budget study: one point per budget from a run's files, a table of them, a planned workflow."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lediflow.core import artifacts

from lediflow.pipeline import paths
from lediflow.studies.autoencoder_budget import point, write_table
from lediflow.cli import main
from lediflow.pipeline.config import load_params
from lediflow.core.errors import LediflowError

REPO = Path(__file__).resolve().parents[1]


def _run_at(tmp_path: Path, steps: int, floor_fid: float, trained: int | None = None) -> dict:
    """A run whose autoencoder was trained `trained` steps (default: its budget) and whose floors are scored."""
    params = load_params([], [f"run.results_dir={tmp_path}", f"autoencoder.train.steps={steps}"])
    floor = {"fid": floor_fid, "fid_se": 0.5, "kid_mean": 0.01, "psnr_db": 26.0, "num_samples": 1000,
             "reference_split": "train", "split": "test"}
    for path, body in ((paths.autoencoder_floor_file(params), floor),
                       (paths.data_floor_file(params), {**floor, "fid": 18.0, "fid_se": 0.4}),
                       (paths.autoencoder_dir(params) / "manifest.json",
                        {"training": {"step": trained or steps, "samples_seen": 64 * steps, "train_seconds": steps}})):
        path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.write_sealed_json(path, body)
    return params


def test_budget_points_line_up_into_a_table_with_the_ratio_to_the_data_floor(tmp_path: Path):
    points = []
    for steps, fid in ((4000, 24.0), (1000, 37.5)):  # given out of order: the table sorts by steps
        _run_at(tmp_path / str(steps), steps, fid)
        out = tmp_path / f"steps_{steps}.json"
        assert main(["autoencoder-budget-point", "--set", f"run.results_dir={tmp_path / str(steps)}", "--set",
                     f"autoencoder.train.steps={steps}", "--out", str(out)]) == 0
        assert json.loads(out.read_text())["floor_fid"] == fid
        points.append(out)
    frame = write_table(points, tmp_path / "tables")
    frame = frame.set_index("steps")
    assert list(frame.index) == [1000, 4000]
    assert frame.loc[1000, "ratio"] == pytest.approx(37.5 / 18.0)
    assert frame.loc[4000, "floor_fid_ci"] == pytest.approx(0.98, abs=0.01)
    assert "<= 1.5" in (tmp_path / "tables" / "autoencoder_budget.md").read_text()
    assert pd.read_csv(tmp_path / "tables" / "autoencoder_budget.csv")["steps"].tolist() == [1000, 4000]


def test_a_point_whose_autoencoder_has_another_budget_is_refused(tmp_path: Path):
    with pytest.raises(LediflowError, match="trained 1000 steps, not autoencoder.train.steps=2000"):
        point(_run_at(tmp_path, 2000, 30.0, trained=1000))
    with pytest.raises(LediflowError, match="has no autoencoder floor, data floor, autoencoder manifest"):
        point(load_params([], [f"run.results_dir={tmp_path / 'empty'}"]))


def _plan(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", "workflow/autoencoder_budget.smk", "-n", "-p",
                           "--config", "budgets=[1000,3000]", f"out={out}", "--cores", "1", *extra],
                          cwd=REPO, capture_output=True, text=True)


def test_the_budget_workflow_plans_one_point_per_budget_in_order(tmp_path: Path):
    result = _plan(tmp_path, "--forceall")
    assert result.returncode == 0, result.stderr
    jobs = (result.stdout + result.stderr).split("rule ")
    points = {block.split("output: ")[1].split()[0]: block.split("input: ")[1].splitlines()[0]
              for block in jobs if block.startswith("point:")}
    one, three = (f"{tmp_path}/autoencoder_budget/steps_{n}.json" for n in (1000, 3000))
    assert sorted(points) == [one, three]
    # 3000 continues 1000's autoencoder, so its job waits for the 1000-step point; 1000 waits for nothing
    assert one in points[three]
    assert "steps_" not in points[one].replace("steps_1000.yaml", "")
    assert any(block.startswith("table:") for block in jobs)
    # an interrupted point leaves the previous floor but no manifest: the inner run must be asked for both to resume
    inner = [line for line in (result.stdout + result.stderr).splitlines() if "snakemake results/" in line]
    assert len(inner) == 2 and all("models/autoencoder/manifest.json" in line and "autoencoder_floor.json" in line
                                   for line in inner), inner


def test_a_finished_point_is_a_record_no_job_redoes(tmp_path: Path):
    # The run has moved past 1000 steps, so redoing that point could only destroy it: even --forceall leaves it
    record = tmp_path / "autoencoder_budget" / "steps_1000.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    result = _plan(tmp_path, "--forceall")
    assert result.returncode == 0, result.stderr
    planned = [line.split("output: ")[1] for line in (result.stdout + result.stderr).splitlines()
               if line.strip().startswith("output: ") and line.endswith(".json")]
    assert planned == [f"{tmp_path}/autoencoder_budget/steps_3000.json"]
