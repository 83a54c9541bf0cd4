"""Per-cell job time, cold (a fresh `lediflow` process per cell, as the pipeline runs by default) against warm
(each cell forked from one server that imported torch and the stages once: `lediflow warm -- ...`).

On a copy of a finished smoke run, the same sample and score cells are re-made in turn, cold and warm
interleaved; each job's wall time is taken as Snakemake's benchmark file would (the command, start to exit).

- warm_ratio[stage] = median warm job seconds / median cold job seconds over the cells; none set (a GPU cell's
  work is a fraction of a second, so there the ratio is what the server is for; on 2 CPU cores it is the share
  of a smoke cell that is start-up).

    python benchmarks/warm.py --run results/smoke          # a finished smoke run (snakemake --configfile configs/smoke.yaml)

A default-budget cell the same way, on a run assembled from the shipped weights (`--pretrained`: the weights
copied, then its data and reference features made cold, untimed, CLIP left out as the hub is unreachable here),
its sample jobs given both cores as the default profile gives them (score jobs keep one thread, as there):

    python benchmarks/warm.py --pretrained pretrained/fashion-mnist-32 --repeats 1 --sample-threads 2 \\
        --cells flow-pixel-learned:euler-2 flow-pixel-gaussian:euler-16
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
    params = yaml.safe_load((run / "params.yaml").read_text())
    target = to / params["run"]["name"]
    shutil.copytree(run, target, symlinks=True)
    params["run"]["results_dir"] = str(to)
    (target / "params.yaml").write_text(runlock.params_text(params))
    return target


def assembled_from(weights: Path, to: Path) -> Path:
    """A run made from shipped weights (`lediflow export-weights`): its data and reference features made here."""
    target = copy_of(weights, to)
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["score"]["clip_download"] = False  # offline: no 55 s of hub retries inside the timed reference stage
    (target / "params.yaml").write_text(runlock.params_text(params))
    for stage in ("prepare-data", "reference-features"):
        subprocess.run(["lediflow", stage, "--config", str(target / "params.yaml")], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    return target


def job_seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cell(text: str) -> tuple[str, str]:
    """`MODEL:SETTING` (e.g. flow-pixel-learned:euler-2) as the pair the stages take."""
    model, sep, setting = text.partition(":")
    if not sep or not model or not setting:
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL:SETTING, e.g. flow-pixel-learned:euler-2")
    return model, setting


def run(run_path: Path, repeats: int = 2, cells: list[tuple[str, str]] | None = None,
        sample_threads: int = 1, pretrained: bool = False) -> list[tuple[str, str, str, str]]:
    cells = cells or CELLS
    with tempfile.TemporaryDirectory() as tmp:
        copy = (assembled_from if pretrained else copy_of)(run_path, Path(tmp) / "results")
        socket_path = Path(tmp) / "warm.sock"
        server = start_server(socket_path, cwd=str(REPO))
        if server is None:
            sys.exit("the warm server did not start: run `lediflow warm -- true` to see why")
        try:
            cold_env = {k: v for k, v in os.environ.items() if k != WARM_ENV}
            envs = {"cold": cold_env, "warm": cold_env | {WARM_ENV: str(socket_path)}}
            threads = {"sample": sample_threads, "score": 1}  # the default profile's: score jobs run one thread
            seconds = {(stage, mode): [] for stage in ("sample", "score") for mode in envs}
            for _ in range(repeats):
                for model, setting in cells:
                    for stage in ("sample", "score"):
                        for mode, env in envs.items():
                            env = env | {"OMP_NUM_THREADS": str(threads[stage])}
                            command = ["lediflow", stage, "--config", str(copy / "params.yaml"), "--model", model,
                                       "--setting", setting]
                            seconds[(stage, mode)].append(job_seconds(command, env))
        finally:
            stop_server(server)
    rows = []
    for stage in ("sample", "score"):
        cold, warm = (statistics.median(seconds[(stage, mode)]) for mode in ("cold", "warm"))
        rows.append((f"warm_ratio[{stage}]", f"{warm / cold:.2f}", "none set",
                     f"{warm:.2f} s vs cold {cold:.2f} s a cell of {run_path.name}, median over {len(cells)} cells "
                     f"x {repeats}, {sample_threads if stage == 'sample' else 1} thread(s) each"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run", type=Path, default=REPO / "results" / "smoke",
                       help="a finished run with data/ and reference/ (default: the smoke run)")
    where.add_argument("--pretrained", type=Path, help="shipped weights (pretrained/<name>) to assemble a run from")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cells", type=cell, nargs="+", default=CELLS, metavar="MODEL:SETTING",
                        help="cells to re-make (default: four smoke cells, both spaces)")
    parser.add_argument("--sample-threads", type=int, default=1, help="OMP threads of a sample job (score: 1)")
    args = parser.parse_args()
    print("| benchmark | value | target | detail |\n| --- | --- | --- | --- |")
    source = (args.pretrained or args.run).resolve()
    if not (source / "params.yaml").is_file():
        sys.exit(f"{source} has no params.yaml: give a finished run (--run) or shipped weights (--pretrained)")
    for row in run(source, args.repeats, args.cells, args.sample_threads, pretrained=args.pretrained is not None):
        print("| " + " | ".join(row) + " |")
