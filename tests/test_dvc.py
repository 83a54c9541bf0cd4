"""DVC as a user meets it: the generated dvc.yaml, repro twice, a param change, a local remote."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lediflow import dvcgen

REPO = Path(__file__).resolve().parents[1]
SKIP = {"results", ".snakemake", "__pycache__", ".pytest_cache", "tmp", ".git", "dvc.lock"}


def _uncommitted(folder: str, names: list[str]) -> list[str]:
    """What a clean clone lacks: run outputs, caches, the DVC cache and lock of this working tree."""
    return [n for n in names if n in SKIP or (folder.endswith(".dvc") and n == "cache")]


def test_committed_dvc_yaml_matches_the_generator():
    committed = (REPO / "dvc.yaml").read_text()
    assert committed == dvcgen.render(), "dvc.yaml drifted from lediflow/dvcgen.py: run `lediflow dvc-yaml`"


def test_every_dvc_stage_runs_an_existing_snakemake_target():
    targets = {stage["cmd"].split()[-1] for stage in dvcgen.stages().values()}
    text = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")) + (REPO / "Snakefile").read_text()
    for target in targets:
        assert f"rule {target}:" in text, target


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> Path:
    """A copy of the repo whose params.yaml is the smoke config, as a fresh git + DVC repo."""
    repo = tmp_path_factory.mktemp("dvc") / "repo"
    shutil.copytree(REPO, repo, ignore=_uncommitted)
    params = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    # DVC's behaviour, not the science, is under test: one step setting per model keeps its three repros short
    # (the whole smoke chain runs in test_pipeline.py and in CI; dvc.yaml's outputs need both spaces).
    params["sample"].update(steps=[1], baseline_extra_steps={}, dopri5_tolerances=[])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "smoke"], repo)
    return repo


@pytest.mark.slow
def test_repro_twice_then_partial_rerun_and_local_remote(smoke_repo: Path, tmp_path: Path):
    first = _run(["dvc", "repro"], smoke_repo)
    for stage in ("data", "train", "sample", "evaluate", "report"):
        assert f"Running stage '{stage}'" in first
    assert (smoke_repo / "results/smoke/tables/headline.md").is_file()

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
