"""The pipeline benchmark's reading of Snakemake's benchmark files and the train benchmark's reading of the
Trainer's metrics (the timing itself is not a test), and the GPU check script's refusal on a machine without
CUDA."""

import argparse
import importlib.util
import math
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmark_module(name: str):
    """A module of benchmarks/ (not a package): loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pipeline_module():
    return _benchmark_module("pipeline")


def test_peak_rss_is_the_maximum_over_a_rules_jobs(tmp_path: Path):
    rows = {"sample-flow-pixel-learned-euler-1": "512.5", "sample-flow-pixel-gaussian-euler-4": "700.25",
            "train_flow-pixel-learned": "1200", "tables": "NA"}
    for stem, rss in rows.items():
        (tmp_path / f"{stem}.tsv").write_text(HEADER + f"1.0\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t1\n")
    peaks = _pipeline_module().peak_rss_by_rule(tmp_path)
    assert peaks == {"sample": (700.25, 2), "train_flow": (1200.0, 1)}


def _bare_module():
    return _benchmark_module("bare")


def test_the_trainers_steady_rate_leaves_out_the_warm_up_windows_and_pools_the_rest(tmp_path: Path):
    # 10 warm-up steps at 10 img/s, then 10 steps at 100 and 20 steps at 50 img/s: 30 steps in 0.1 + 0.4 units
    lines = ['{"step": 10, "images_per_s": 10.0}', '{"step": 20, "images_per_s": 100.0}',
             '{"step": 40, "images_per_s": 50.0}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert _bare_module().steady_images_per_s(tmp_path / "metrics.jsonl", 10) == pytest.approx(30 / 0.5)
    with pytest.raises(ValueError, match="no metrics window"):
        _bare_module().steady_images_per_s(tmp_path / "metrics.jsonl", 40)


def test_planned_jobs_reads_snakemakes_job_stats():
    stats = "Job stats:\njob      count\n-----  -------\narm          6\ntotal       10\n\nReasons:"
    assert _pipeline_module().planned_jobs(stats) == 10
    assert _pipeline_module().planned_jobs("Nothing to be done.") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_refuses_without_cuda_in_one_line_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "gpu_check"
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout.strip().count("\n") == 0 and "no CUDA device" in done.stdout
    assert not out.exists()


def test_run_jobs_sums_each_rule_and_leaves_out_a_training_job_a_session_cut(tmp_path: Path):
    import json

    runs = []
    for name, seconds, resumed in (("cold", 10.0, 0), ("warm", 4.0, 2000)):
        run = tmp_path / name
        (run / "benchmarks").mkdir(parents=True)
        (run / "training").mkdir()
        stems = ("sample-flow-pixel-learned-euler-1", "sample-flow-pixel-gaussian-euler-4", "train_flow-pixel-learned")
        for stem in stems:
            (run / "benchmarks" / f"{stem}.tsv").write_text(HEADER + f"{seconds}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t1\n")
        # the warm run's flow training was cut by a session's end and resumed: its file times the second part
        (run / "training" / "flow-pixel-learned.json").write_text(json.dumps({"resumed_from": resumed}))
        runs.append(run)
    rows = {r["rule"]: r for r in _benchmark_module("run_jobs").table(*runs)}
    assert rows["sample"]["jobs"] == "2 / 2" and rows["sample"]["ratio"] == pytest.approx(0.4)
    assert rows["train_flow"]["note"] == "resumed: left out" and math.isnan(rows["train_flow"]["ratio"])
    total = rows["total (rules not resumed)"]
    assert (total["first_s"], total["second_s"], total["jobs"]) == (20.0, 8.0, "3 / 3")


def test_warm_benchmark_copies_shipped_weights_under_their_run_name_and_reads_cells(tmp_path: Path):
    # the stages write results_dir/<run.name>: a copy of pretrained/fashion-mnist-32 must be named by its run
    warm = _benchmark_module("warm")
    shipped = tmp_path / "fashion-mnist-32"
    shipped.mkdir()
    (shipped / "params.yaml").write_text((REPO / "pretrained" / "fashion-mnist-32" / "params.yaml").read_text())
    copy = warm.copy_of(shipped, tmp_path / "results")
    params = yaml.safe_load((copy / "params.yaml").read_text())
    assert params["run"]["name"] != shipped.name
    assert copy == tmp_path / "results" / params["run"]["name"]
    assert params["run"]["results_dir"] == str(tmp_path / "results")
    assert warm.cell("flow-pixel-learned:euler-2") == ("flow-pixel-learned", "euler-2")
    with pytest.raises(argparse.ArgumentTypeError, match="MODEL:SETTING"):
        warm.cell("euler-2")
