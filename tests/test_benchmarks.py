"""The pipeline benchmark's reading of Snakemake's benchmark files (the timing itself is not a test), and the GPU
check script's refusal on a machine without CUDA."""

import importlib.util
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _pipeline_module():
    spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "benchmarks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_rss_is_the_maximum_over_a_rules_jobs(tmp_path: Path):
    rows = {"sample-flow-pixel-learned-euler-1": "512.5", "sample-flow-pixel-gaussian-euler-4": "700.25",
            "train_flow-pixel-learned": "1200", "tables": "NA"}
    for stem, rss in rows.items():
        (tmp_path / f"{stem}.tsv").write_text(HEADER + f"1.0\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t1\n")
    peaks = _pipeline_module().peak_rss_by_rule(tmp_path)
    assert peaks == {"sample": (700.25, 2), "train_flow": (1200.0, 1)}


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
