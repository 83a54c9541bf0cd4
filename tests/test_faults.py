"""Fault injection: damaged artifacts, bad CLI input and a second invocation each give one line, never a traceback.

The pipeline-level half (damage after a finished smoke run, then a rebuild by snakemake; a concurrent
invocation refused while the smoke run is going) lives in test_pipeline.py, beside the run it reuses.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lediflow.core import artifacts

from lediflow import cli

from lediflow.pipeline import runlock
from lediflow.method.checkpoint import load_tensors, save_tensors
from lediflow.pipeline.config import load_params
from lediflow.pipeline.data import load_split
from lediflow.core.errors import ConfigError, LediflowError
from lediflow.pipeline.workflow import coerce_overrides

REPO = Path(__file__).resolve().parents[1]


def lediflow(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lediflow.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def smoke_args(tmp_path: Path) -> list[str]:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"run": {"results_dir": str(tmp_path / "results")}}))
    return ["--config", "configs/smoke.yaml", "--config", str(overlay)]


# --- damaged artifacts: one line, the file moved aside so snakemake rebuilds it -------------------------------

def _artifact_folder(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    folder = tmp_path / "art"
    folder.mkdir()
    np.save(folder / name, array)
    artifacts.write_manifest(folder, "test", {})
    return folder


@pytest.mark.parametrize("damage", ["truncate", "flip-a-byte"])
def test_a_damaged_npy_is_one_line_and_moved_aside(tmp_path: Path, damage: str):
    folder = _artifact_folder(tmp_path, "train.npy", np.arange(4096, dtype=np.uint8).reshape(4, 1, 32, 32))
    path = folder / "train.npy"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        data[-1] ^= 0xFF  # same size: only the sha256 can tell
        path.write_bytes(bytes(data))
    with pytest.raises(LediflowError) as info:
        load_split(folder, "train")
    message = str(info.value)
    assert "train.npy is damaged" in message and "run snakemake again" in message and "\n" not in message
    assert not path.exists() and (folder / "train.npy.damaged").read_bytes()[:6] == b"\x93NUMPY"


def test_an_intact_artifact_loads_and_a_missing_one_names_its_stage(tmp_path: Path):
    folder = _artifact_folder(tmp_path, "train.npy", np.ones((2, 1, 4, 4), dtype=np.uint8))
    assert load_split(folder, "train").sum() == 32
    with pytest.raises(LediflowError, match="test.npy is missing; run `lediflow prepare-data`"):
        load_split(folder, "test")


def test_a_damaged_safetensors_is_one_line(tmp_path: Path):
    path = tmp_path / "model" / "model.safetensors"
    save_tensors(path, {"w": torch.ones(64, 64)})
    path.write_bytes(path.read_bytes()[:200])  # a file no manifest records (a user's): the loader finds it unreadable
    with pytest.raises(LediflowError, match="model.safetensors is damaged .not a readable safetensors file"):
        load_tensors(path, required=False)
    assert (path.parent / "model.safetensors.damaged").is_file()


def test_a_model_file_whose_manifest_was_deleted_counts_as_damaged(tmp_path: Path):
    """A deleted manifest must not turn verification off: the weights are set aside for a rebuild."""
    path = tmp_path / "model" / "model.safetensors"
    save_tensors(path, {"w": torch.ones(8, 8)})
    artifacts.write_manifest(path.parent, "test", {})
    assert torch.equal(load_tensors(path)["w"], torch.ones(8, 8))
    (path.parent / artifacts.MANIFEST).unlink()
    with pytest.raises(LediflowError, match="no manifest.json beside it"):
        load_tensors(path)
    assert (path.parent / "model.safetensors.damaged").is_file() and not path.exists()


@pytest.mark.parametrize("target", ["score", "manifest"])
def test_broken_json_is_one_line(tmp_path: Path, target: str):
    path = tmp_path / ("euler-1.json" if target == "score" else artifacts.MANIFEST)
    path.write_text('{"fid": 3')
    with pytest.raises(LediflowError, match="is damaged .not valid JSON"):
        artifacts.read_json(path) if target == "score" else artifacts.read_manifest(tmp_path)


# --- config: Snakemake's --config strings, duplicate keys, geometry, empty sweeps ----------------------------

def test_snakemake_config_strings_become_the_schema_types():
    # What `snakemake --config 'data={resolution: 64}' 'sample={steps: [1, 2]}' run=...` hands over.
    raw = {"data": {"resolution": "64"}, "sample": {"steps": ["1", "2"], "dopri5_tolerances": "[1e-3]"},
           "run": {"name": "x", "seed": "3"}, "flow": {"train": {"lr": "1e-4"}}}
    assert coerce_overrides(raw) == {"data": {"resolution": 64}, "sample": {"steps": [1, 2], "dopri5_tolerances": [1e-3]},
                                     "run": {"name": "x", "seed": 3}, "flow": {"train": {"lr": 1e-4}}}


@pytest.mark.parametrize("sets, needle", [
    (["data.resolution=36"], "flow.latent_patch_size = 2 does not divide the latent grid side of 9"),
    (["data.resolution=34", "flow.patch_size=2"], "34 cannot be halved 2 times for the 3 entries of prior.channels"),
    (["flow.patch_size=3"], "flow.patch_size = 3 does not divide the image side data.resolution of 32"),
    (["autoencoder.norm_num_groups=7"], "autoencoder.norm_num_groups must divide"),
    (["sample.steps=[]", "sample.dopri5_tolerances=[]"], "the sampling sweep is empty"),
])
def test_unbuildable_params_are_refused_at_validation(sets, needle):
    with pytest.raises(ConfigError) as info:
        load_params(["configs/smoke.yaml"], sets)
    assert needle in str(info.value)


def test_geometry_of_a_pretrained_vae_comes_from_its_local_config(tmp_path: Path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [8, 8, 8, 8]}))  # 8x down
    base = ["autoencoder.source=pretrained", f"autoencoder.pretrained={tmp_path / 'vae'}"]
    assert load_params(["configs/smoke.yaml"], base + ["flow.latent_patch_size=4"])  # 32 / 8 = 4
    with pytest.raises(ConfigError, match="latent_patch_size = 8 does not divide the latent grid side of 4"):
        load_params(["configs/smoke.yaml"], base + ["flow.latent_patch_size=8"])


# --- every CLI error case: one line, no traceback (as a user runs it) -----------------------------------------

CLI_CASES = {
    "setting euler-0": (["sample", "--model", "flow-pixel-learned", "--setting", "euler-0"], "is not a solver cell"),
    "setting euler-x": (["sample", "--model", "flow-pixel-learned", "--setting", "euler-x"], "is not a solver cell"),
    "setting euler": (["score", "--model", "flow-pixel-learned", "--setting", "euler"], "is not a solver cell"),
    "setting dopri5-abc": (["sample", "--model", "flow-pixel-learned", "--setting", "dopri5-abc"],
                           "is not a solver cell"),
    "setting dopri5-0": (["sample", "--model", "flow-pixel-learned", "--setting", "dopri5-0"], "0 < tolerance < 1"),
    "setting dopri5--1": (["score", "--model", "flow-pixel-learned", "--setting", "dopri5--1"], "0 < tolerance < 1"),
    "model bogus": (["sample", "--model", "bogus", "--setting", "euler-1"], "'bogus' is not a flow model"),
    "model of another run": (["sample", "--model", "flow-latent-learned", "--setting", "euler-1", "--set",
                              "flow.spaces=[pixel]"], "is not trained by run 'smoke'"),
    "tables without scores": (["tables"], "euler-1.json is missing; run `snakemake --cores all`"),
    "encode-latents without an autoencoder": (["encode-latents"], "autoencoder/manifest.json is missing; run `lediflow train-autoencoder`"),
    "reference-features without data": (["reference-features"], "data/manifest.json is missing; run `lediflow prepare-data`"),
    "geometry": (["show-params", "--set", "data.resolution=36"], "does not divide the latent grid side of 9"),
    "a study of a folder that is no run": (["methods", "--runs", "results/default", "configs"],
                                           "--runs configs: not a finished run's folder"),
    "a method run that is no run": (["scaling", "--runs", "results/default", "--method-runs", "configs"],
                                    "--method-runs configs: not a finished run's folder"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_error_cases_are_one_line(case: str, smoke_args: list[str], tmp_path: Path):
    args, needle = CLI_CASES[case]
    result = lediflow(args[0], *smoke_args, *args[1:])
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lediflow: error: ") and needle in lines[0], result.stderr
    assert not any((tmp_path / "results").rglob("*.*")), "a failed command left files behind"


def test_duplicate_yaml_keys_are_refused(tmp_path: Path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("sample:\n  num_samples: 32\n  num_samples: 16\n")
    result = lediflow("show-params", "--config", str(dup))
    assert result.returncode == 2 and "key 'num_samples' is given twice (first on line 2)" in result.stderr


def test_an_unexpected_failure_is_one_line_with_a_way_to_the_traceback(monkeypatch, capsys, tmp_path: Path):
    def broken(params, args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(cli.STAGES, "show-params", cli.Stage(broken, "", writes_run=False))
    assert cli.main(["show-params"]) == 70
    err = capsys.readouterr().err
    assert err == ("lediflow: internal error in show-params: RuntimeError: boom (rerun with LEDIFLOW_TRACEBACK=1 "
                   "for the traceback and report it)\n")
    monkeypatch.setenv("LEDIFLOW_TRACEBACK", "1")
    assert cli.main(["show-params"]) == 70
    assert "Traceback" in capsys.readouterr().err


# --- a run cannot change under a live Snakemake -----------------------------------------------------------------

@pytest.fixture
def live_holder(tmp_path: Path):
    """A process whose command line names snakemake, recorded as the holder of run 'smoke'."""
    proc = subprocess.Popen(["snakemake-stand-in", "60"], executable="/bin/sleep")
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    (folder / runlock.LOCK_NAME).write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(),
                                                        "token": "t"}))
    yield folder
    proc.kill()
    proc.wait()


def test_a_live_run_refuses_other_params_and_accepts_its_own(live_holder: Path, smoke_args: list[str]):
    params = load_params([smoke_args[1], smoke_args[3]])
    (live_holder / "params.yaml").write_text(runlock.params_text(params))
    runlock.refuse_if_changed(params, "x")  # the same params: allowed (its own jobs run exactly this)
    other = load_params([smoke_args[1], smoke_args[3]], ["sample.num_samples=16"])
    with pytest.raises(ConfigError, match=r"is being run by Snakemake \(pid \d+\) with other params "
                                          r"\(sample\.num_samples: \d+ there, 16 here\); x would"):
        runlock.refuse_if_changed(other, "x")
    os.environ[runlock.TOKEN_ENV] = "t"  # a job of the holder itself
    try:
        runlock.refuse_if_changed(other, "x")
    finally:
        del os.environ[runlock.TOKEN_ENV]
    result = lediflow("prepare-data", *smoke_args, "--set", "sample.num_samples=16")
    assert result.returncode == 2 and "lediflow prepare-data would change it" in result.stderr
    assert not (live_holder / "data").exists()


def test_a_second_snakemake_with_other_params_is_refused_while_a_run_holds_the_folder(live_holder: Path,
                                                                                     smoke_args: list[str]):
    """What a user meets when starting a second `snakemake` on a running run: one line, exit 2, nothing run."""
    (live_holder / "params.yaml").write_text(runlock.params_text(load_params([smoke_args[1], smoke_args[3]])))
    refused = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "prepare_data", "--configfile",
                              "configs/smoke.yaml", smoke_args[3], "--config", "sample={num_samples: 16}"],
                             cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "is being run by Snakemake" in refused.stderr.strip().splitlines()[-1]
    assert not (live_holder / "data").exists()


def test_a_stale_lock_of_a_killed_run_is_ignored(tmp_path: Path, smoke_args: list[str]):
    proc = subprocess.Popen(["snakemake-stand-in", "0"], executable="/bin/sleep")
    proc.wait()
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    (folder / runlock.LOCK_NAME).write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname()}))
    assert runlock.holder(folder) is None
    runlock.refuse_if_changed(load_params([smoke_args[1], smoke_args[3]], ["sample.num_samples=16"]), "x")


def test_the_run_lock_compares_resolved_values_not_yaml_text(live_holder: Path, smoke_args: list[str]):
    params = load_params([smoke_args[1], smoke_args[3]])
    # the same values written in another key order (as another route to the same config may give them)
    (live_holder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
    assert (live_holder / "params.yaml").read_text() != runlock.params_text(params)
    runlock.refuse_if_changed(params, "x")


def test_another_projects_snakemake_with_a_reused_pid_holds_nothing(tmp_path: Path, smoke_args: list[str]):
    """A stale lock whose pid now belongs to a Snakemake working in another folder is ignored."""
    elsewhere = tmp_path / "other-project"
    elsewhere.mkdir()
    proc = subprocess.Popen(["snakemake-stand-in", "60"], executable="/bin/sleep", cwd=elsewhere)
    try:
        folder = tmp_path / "results" / "smoke"
        folder.mkdir(parents=True)
        (folder / runlock.LOCK_NAME).write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(),
                                                            "token": "t", "cwd": str(REPO)}))
        assert runlock.holder(folder) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_direct_stage_call_with_other_params_cannot_write_into_a_run(tmp_path: Path, smoke_args: list[str]):
    """A finished run's artifacts are never re-made with other params by a direct call (the next snakemake would
    publish them under the run's params.yaml): refused in one line naming the key; another run.name is free."""
    params = load_params([smoke_args[1], smoke_args[3]])
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(runlock.params_text(params))
    result = lediflow("prepare-data", *smoke_args, "--set", "flow.train.lr=0.003")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "(flow.train.lr:" in result.stderr and ", 0.003 here)" in result.stderr, result.stderr
    assert "--set run.name=" in result.stderr, result.stderr
    assert not (folder / "data").exists()
    same = lediflow("show-params", *smoke_args)  # reads only
    assert same.returncode == 0
    other = lediflow("prepare-data", *smoke_args, "--set", "flow.train.lr=0.003", "--set", "run.name=smoke-lr")
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "results" / "smoke-lr" / "data" / "train.npy").is_file() and not (folder / "data").exists()
