"""Per-cell job time, cold (a fresh `lediflow` process per cell, as the pipeline runs by default) against warm
(each cell forked from one server that imported torch and the stages once: `lediflow warm -- ...`).

On a copy of a finished smoke run, the same sample and score cells are re-made in turn, cold and warm
interleaved; each job's wall time is taken as Snakemake's benchmark file would (the command, start to exit).

- warm_ratio[stage] = median warm job seconds / median cold job seconds over the cells; none set (a GPU cell's
  work is a fraction of a second, so there the ratio is what the server is for; on 2 CPU cores it is the share
  of a smoke cell that is start-up).

    python benchmarks/warm.py --run results/smoke          # a finished smoke run (snakemake --configfile configs/smoke.yaml)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lediflow.pipeline import runlock  # noqa: E402
from lediflow.cli.warm import WARM_ENV  # noqa: E402
from lediflow.cli.warm.client import start_server, stop_server  # noqa: E402

CELLS = [("flow-pixel-learned", "euler-1"), ("flow-pixel-gaussian", "euler-4"), ("flow-latent-learned", "euler-1"),
         ("flow-latent-gaussian", "euler-4")]


def copy_of(run: Path, to: Path) -> Path:
    """The run copied under `to`, its params.yaml naming the copy's results_dir (stages then write the copy)."""
    target = to / run.name
    shutil.copytree(run, target, symlinks=True)
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["run"]["results_dir"] = str(to)
    (target / "params.yaml").write_text(runlock.params_text(params))
    return target


def job_seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(smoke_run: Path, repeats: int = 2) -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = copy_of(smoke_run, Path(tmp) / "results")
        socket_path = Path(tmp) / "warm.sock"
        server = start_server(socket_path, cwd=str(REPO))
        if server is None:
            sys.exit("the warm server did not start: run `lediflow warm -- true` to see why")
        try:
            cold_env = {k: v for k, v in os.environ.items() if k != WARM_ENV} | {"OMP_NUM_THREADS": "1"}
            envs = {"cold": cold_env, "warm": cold_env | {WARM_ENV: str(socket_path)}}
            seconds = {(stage, mode): [] for stage in ("sample", "score") for mode in envs}
            for _ in range(repeats):
                for model, setting in CELLS:
                    for stage in ("sample", "score"):
                        for mode, env in envs.items():
                            command = ["lediflow", stage, "--config", str(copy / "params.yaml"), "--model", model,
                                       "--setting", setting]
                            seconds[(stage, mode)].append(job_seconds(command, env))
        finally:
            stop_server(server)
    rows = []
    for stage in ("sample", "score"):
        cold, warm = (statistics.median(seconds[(stage, mode)]) for mode in ("cold", "warm"))
        rows.append((f"warm_ratio[{stage}]", f"{warm / cold:.2f}", "none set",
                     f"{warm:.2f} s vs cold {cold:.2f} s a smoke cell, median over {len(CELLS)} cells x {repeats}, "
                     "1 thread each"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "results" / "smoke", help="a finished smoke run")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print("| benchmark | value | target | detail |\n| --- | --- | --- | --- |")
    for row in run(args.run.resolve(), args.repeats):
        print("| " + " | ".join(row) + " |")
