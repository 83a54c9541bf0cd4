"""The warm server: a forked command prints, exits and writes as a cold one; a gone client stops its command; a
command it cannot serve faithfully runs cold."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_run
from lediflow.cli.warm import TRACE_ENV, WARM_ENV
from lediflow.cli.warm.client import forward

REPO = Path(__file__).resolve().parents[1]
# A server whose "command" reports what the child sees, so the test can tell it ran in a fork of the server.
TOY_SERVER = """
import os, signal, sys, time
from pathlib import Path
from lediflow.cli.warm.server import Server

def dispatch(argv):
    if argv[0] == "threads":
        from threadpoolctl import threadpool_info
        print(max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"))
        return 0
    if argv[0] == "report":
        print(os.getppid(), os.getcwd(), os.environ.get("TOY_VALUE"), os.environ.get("LEDIFLOW_WARM"),
              os.environ.get("SET_BY_AN_IMPORT"), sep="|")
        print("to stderr", file=sys.stderr)
        return 0
    if argv[0] == "exit":
        return int(argv[1])
    if argv[0] == "signal":
        os.kill(os.getpid(), signal.SIGTERM)
    if argv[0] == "sleep":
        Path(argv[1]).write_text(str(os.getpid()))
        time.sleep(60)
    raise RuntimeError("a defect")

import numpy  # loads OpenBLAS with the server's thread count, as the real server's imports do
print(os.getpid(), flush=True)
before = dict(os.environ)
os.environ["SET_BY_AN_IMPORT"] = "lazy"  # as importing torch sets CUDA_MODULE_LOADING
Server(Path(sys.argv[1]), dispatch, env_before_imports=before).serve_forever()
"""


def _wait_for(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.fixture
def toy_server(tmp_path: Path):
    path = tmp_path / "toy.sock"
    server = subprocess.Popen([sys.executable, "-c", TOY_SERVER, str(path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"})
    pid = int(server.stdout.readline())
    _wait_for(path)
    yield path, pid
    server.terminate()
    server.wait(timeout=10)
    assert not path.exists()  # a stopped server leaves no socket behind


def _client(path: Path, argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    code = ("import sys; from lediflow.cli.warm.client import forward; "
            f"sys.exit(forward({str(path)!r}, {argv!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_a_forked_command_has_the_clients_streams_folder_environment_and_exit_status(toy_server, tmp_path: Path):
    path, server_pid = toy_server
    done = _client(path, ["report"], tmp_path, TOY_VALUE="from the client")
    parent, cwd, value, warm, imported = done.stdout.strip().split("|")
    assert done.returncode == 0 and int(parent) == server_pid  # forked from the server, not run by the client
    assert Path(cwd) == tmp_path and value == "from the client" and warm == "None"  # never forwards itself again
    assert imported == "lazy"  # what the server's imports set, a cold command's imports would set too
    assert done.stderr == "to stderr\n"
    assert _client(path, ["exit", "3"], tmp_path).returncode == 3
    assert _client(path, ["signal"], tmp_path).returncode == 128 + signal.SIGTERM  # as a shell reports a cold one
    defect = _client(path, ["defect"], tmp_path)
    assert defect.returncode == 70 and "RuntimeError: a defect" in defect.stderr


def test_a_forked_command_runs_its_blas_on_the_threads_it_asks_for(toy_server, tmp_path: Path):
    # numpy's OpenBLAS sized its pool in the server (2 threads); a score job asking for one must not run on two
    path, _ = toy_server
    assert _client(path, ["threads"], tmp_path, OMP_NUM_THREADS="1").stdout.strip() == "1"
    assert _client(path, ["threads"], tmp_path, OMP_NUM_THREADS="2").stdout.strip() == "2"


def test_a_client_that_goes_away_takes_its_command_with_it(toy_server, tmp_path: Path):
    path, _ = toy_server
    marker = tmp_path / "child.pid"
    code = ("import sys; from lediflow.cli.warm.client import forward; "
            f"sys.exit(forward({str(path)!r}, ['sleep', {str(marker)!r}]))")
    client = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    _wait_for(marker)
    child = int(marker.read_text())
    client.send_signal(signal.SIGTERM)  # as Snakemake cancels a job
    client.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the abandoned command is still running"
        time.sleep(0.05)


def test_a_command_the_server_cannot_serve_faithfully_runs_cold(toy_server, tmp_path: Path):
    path, _ = toy_server
    # HF_HUB_OFFLINE is read when huggingface_hub is imported: the server's import would not see this value
    refused = _client(path, ["report"], tmp_path, HF_HUB_OFFLINE="1")
    assert refused.returncode == 0 and refused.stdout == ""  # forward() returned None: the caller runs it itself
    assert forward(str(tmp_path / "no-server.sock"), ["report"]) is None
    ranked = _client(path, ["report"], tmp_path, TORCHELASTIC_RUN_ID="job")  # a torchrun rank stays torchrun's
    assert ranked.returncode == 0 and ranked.stdout == ""


def test_lediflow_warm_runs_the_command_against_a_server_it_starts_and_stops(tmp_path: Path):
    script = ('import os, sys; w = os.environ["LEDIFLOW_WARM"]; print(w); '
              'sys.exit(0 if os.path.exists(w) else 5)')
    done = subprocess.run([sys.executable, "-m", "lediflow", "warm", "--", sys.executable, "-c", script],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert not Path(done.stdout.strip()).exists()  # stopped and cleaned up after the command
    missing = subprocess.run([sys.executable, "-m", "lediflow", "warm"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "warm -- snakemake" in missing.stderr


@pytest.mark.slow
def test_a_sample_cell_forked_warm_writes_the_same_bytes_as_a_cold_one(tmp_path: Path, smoke_results: Path):
    outputs = {}
    for mode in ("cold", "warm"):
        run = copy_run(smoke_results, tmp_path / mode / "results") / "smoke"
        cell = run / "samples" / "flow-latent-learned" / "euler-4"
        for item in cell.iterdir():
            item.unlink()
        command = [sys.executable, "-m", "lediflow", "sample", "--config", str(run / "params.yaml"),
                   "--model", "flow-latent-learned", "--setting", "euler-4"]
        if mode == "warm":
            command = [sys.executable, "-m", "lediflow", "warm", "--", "lediflow", *command[3:]]
        env = {k: v for k, v in os.environ.items() if k != WARM_ENV}
        trace = tmp_path / f"{mode}.trace"
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              env={**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", TRACE_ENV: str(trace)})
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[mode] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cell.glob("*.npy")}
    assert (tmp_path / "warm.trace").read_text() == "warm sample\n"  # it was forked from the server
    assert not (tmp_path / "cold.trace").exists()  # without LEDIFLOW_WARM nothing is forwarded
    assert outputs["cold"] and outputs["warm"] == outputs["cold"]


@pytest.mark.slow
def test_a_warm_smoke_run_has_the_cold_runs_jobs_and_scores(tmp_path: Path, smoke_results: Path):
    """The whole smoke pipeline under `lediflow warm` against the cold smoke run: the same jobs (one benchmark
    file each), every cell scored the same, and less summed job time."""
    import pandas as pd
    import yaml

    cold = smoke_results / "smoke"
    # the cold run's training threads (Snakemake gives a training job every core): the same here, or the numbers
    # differ for that reason alone on a machine with more cores
    device = json.loads((cold / "models" / "flow-pixel-learned" / "manifest.json").read_text())["training"]["device"]
    cores = re.search(r"\((\d+) threads?\)", device).group(1)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"run": {"results_dir": str(tmp_path / "results")}}))
    trace = tmp_path / "warm.trace"
    done = subprocess.run([sys.executable, "-m", "lediflow", "warm", "--", sys.executable, "-m", "snakemake",
                           "--cores", cores, "--configfile", "configs/smoke.yaml", str(overlay)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                                               TRACE_ENV: str(trace)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cold" not in trace.read_text() and "warm score" in trace.read_text()
    warm = tmp_path / "results" / "smoke"
    jobs = {run: sorted(p.name for p in (run / "benchmarks").glob("*.tsv")) for run in (warm, cold)}
    assert jobs[warm] == jobs[cold]
    columns = ["space", "prior", "setting", "nfe", "fid", "kid_mean", "precision", "recall"]
    scores = {run: pd.read_csv(run / "tables" / "scores_long.csv")[columns].sort_values(columns[:3])
              .reset_index(drop=True) for run in (warm, cold)}
    pd.testing.assert_frame_equal(scores[warm], scores[cold])
