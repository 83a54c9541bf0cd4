"""DVC as a user meets it: the generated dvc.yaml, repro twice, a param change, a local remote."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lediflow.pipeline import dvcgen
from conftest import copy_run

REPO = Path(__file__).resolve().parents[1]
SKIP = {"results", ".snakemake", "__pycache__", ".pytest_cache", "tmp", ".git", "dvc.lock"}


def _uncommitted(folder: str, names: list[str]) -> list[str]:
    """What a clean clone lacks: run outputs, caches, the DVC cache and lock of this working tree."""
    return [n for n in names if n in SKIP or (folder.endswith(".dvc") and n == "cache")]


def test_committed_dvc_yaml_matches_the_generator():
    committed = (REPO / "dvc.yaml").read_text()
    assert committed == dvcgen.render(), "dvc.yaml drifted from lediflow/pipeline/dvcgen.py: run `lediflow dvc-yaml`"


def test_every_dvc_stage_runs_an_existing_snakemake_target():
    targets = {stage["cmd"].split()[-1] for stage in dvcgen.stages().values()}
    text = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")) + (REPO / "Snakefile").read_text()
    for target in targets:
        assert f"rule {target}:" in text, target


def test_the_committed_lock_matches_the_committed_code_and_results():
    """dvc.lock records the code and small results of the default run: a change to a stage's code (or to a
    committed score) without re-making the run and `dvc commit` fails here, so `dvc repro` in a clone that holds
    the cache re-runs nothing. Outputs that only live in the DVC cache may be absent ("not in cache")."""
    import json

    done = subprocess.run(["dvc", "status", "--json"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    status = json.loads(done.stdout or "{}")
    stale = []
    for stage, entries in status.items():
        for entry in entries if isinstance(entries, list) else []:
            for path, state in entry.get("changed deps", {}).items():
                if not path.startswith("results/") or state != "deleted":
                    stale.append(f"{stage}: dependency {path} {state}")
            for path, state in entry.get("changed outs", {}).items():
                if state != "not in cache" and not (state == "deleted" and not _committed(path)):
                    stale.append(f"{stage}: output {path} {state}")
    assert not stale, ("dvc.lock does not match the committed tree; re-make the default run with this code and run "
                       "`dvc commit` (docs/dvc.md):\n" + "\n".join(stale))


def _committed(path: str) -> bool:
    listed = subprocess.run(["git", "ls-files", path], cwd=REPO, capture_output=True, text=True).stdout
    return bool(listed.strip())


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory, smoke_results: Path) -> Path:
    """A copy of the repo whose params.yaml is the smoke config, as a fresh git + DVC repo, holding the session's
    finished smoke run without its tables and figures.

    DVC's wiring is under test, not the science: `dvc repro` must run every stage's Snakemake target, and the
    report stage must really make the tables again; the trainings and scores it finds done (the whole chain runs
    from nothing in the `smoke_results` fixture or CI's smoke step) are not paid for a second time.
    """
    repo = tmp_path_factory.mktemp("dvc") / "repo"
    shutil.copytree(REPO, repo, ignore=_uncommitted)
    shutil.copy(REPO / "configs" / "smoke.yaml", repo / "params.yaml")
    copy_run(smoke_results, repo / "results", leave_out=("tables", "figures"))
    _run(["git", "init", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "smoke"], repo)
    return repo


@pytest.mark.slow
def test_repro_twice_then_partial_rerun_and_local_remote(smoke_repo: Path, tmp_path: Path):
    assert not (smoke_repo / "results/smoke/tables").exists()
    first = _run(["dvc", "repro"], smoke_repo)
    for stage in ("data", "train", "sample", "evaluate", "report"):
        assert f"Running stage '{stage}'" in first
    assert (smoke_repo / "results/smoke/tables/headline.md").is_file()  # made by the report stage's Snakemake

    second = _run(["dvc", "repro"], smoke_repo)
    assert "Running stage" not in second  # nothing changed, nothing runs

    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    params["sample"]["grid_images"] = 9  # a sampling parameter
    (smoke_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _run(["dvc", "repro"], smoke_repo)
    for stage in ("data", "train"):
        assert f"Running stage '{stage}'" not in third
    assert "Running stage 'sample'" in third

    # A local remote: push, lose the cache and the data, pull them back.
    remote = tmp_path / "remote"
    _run(["dvc", "remote", "add", "-d", "local", str(remote)], smoke_repo)
    _run(["dvc", "push"], smoke_repo)
    data = smoke_repo / "results/smoke/data/train.npy"
    before = data.read_bytes()
    shutil.rmtree(smoke_repo / ".dvc" / "cache")
    shutil.rmtree(smoke_repo / "results/smoke/data")
    _run(["dvc", "pull"], smoke_repo)
    assert data.read_bytes() == before


def test_checkpoints_and_byte_code_are_never_versioned():
    """DVC versions a model's final weights, arch.json and manifest; checkpoints stay local, caches out."""
    paths = ["results/default/models/flow-pixel-learned/checkpoints/step_00002000/model.safetensors",
             "results/default/models/flow-pixel-learned/model.safetensors.damaged",
             "lediflow/method/networks/__pycache__/dit.cpython-311.pyc",
             "results/default/models/flow-pixel-learned/model.safetensors",
             "results/default/models/flow-pixel-learned/manifest.json"]
    done = subprocess.run(["dvc", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    ignored = set(done.stdout.split())
    assert ignored == set(paths[:3]), done.stdout + done.stderr
