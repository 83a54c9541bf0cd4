"""The Snakefile's check before planning: damaged artifacts are set aside so the same snakemake call rebuilds them."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from lediflow.core import artifacts
from lediflow.pipeline import preflight

from conftest import flip_byte

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder with one manifest-recorded folder, a trainer checkpoint, a staging leftover and a sealed score."""
    run = tmp_path / "results" / "toy"
    data = run / "data"
    data.mkdir(parents=True)
    np.save(data / "train.npy", np.arange(4096, dtype=np.uint8))
    (data / "checkpoints").mkdir()
    np.save(data / "checkpoints" / "weights.npy", np.zeros(8))
    artifacts.write_manifest(data, "test", {})
    for folder in (data / "checkpoints", run / ".data.tmp-x"):  # the trainer and a killed job's staging folder
        folder.mkdir(exist_ok=True)
        (folder / artifacts.MANIFEST).write_text("{")
    artifacts.write_sealed_json(run / "scores" / "m" / "euler-1.json", {"fid": 10.0})
    return run


@pytest.mark.parametrize("argv, looks", [
    (["-n"], True), (["-np", "--cores", "1"], True), (["--dry-run"], True), (["--touch"], True),
    (["--report=r.html"], True), (["--unlock"], True), (["--lint"], True),
    (["--cores", "all"], False), (["-c2", "-p"], False), (["--configfile", "configs/smoke.yaml"], False),
    (["--forcerun", "time_cells"], False), ([], False),
])
def test_only_inspecting_command_lines_are_told_apart(argv: list[str], looks: bool):
    assert preflight.looks_only(argv) is looks


def test_an_intact_run_has_nothing_damaged_and_checkpoints_and_staging_folders_are_left_alone(run: Path):
    assert preflight.damaged(run) == []


def test_each_kind_of_damage_is_found_with_its_reason(run: Path):
    flip_byte(run / "data" / "train.npy")
    score = run / "scores" / "m" / "euler-1.json"
    score.write_text(json.dumps({**json.loads(score.read_text()), "fid": 10.5}))
    found = dict(preflight.damaged(run))
    assert found == {run / "data" / "train.npy": "its sha256 differs from the one its manifest records",
                     score: "its content no longer matches the checksum written with it"}
    (run / "data" / artifacts.MANIFEST).write_text('{"files": ')
    assert dict(preflight.damaged(run))[run / "data" / artifacts.MANIFEST] == "not a readable manifest"


def test_a_real_run_moves_damage_aside_in_one_line_an_inspecting_one_only_reports(run: Path, capsys):
    train = run / "data" / "train.npy"
    flip_byte(train)
    assert len(preflight.set_aside_damaged(run, ["-n"], main_process=True)) == 1
    assert train.is_file() and "a snakemake call that runs jobs sets it aside" in capsys.readouterr().err
    assert preflight.set_aside_damaged(run, ["--cores", "1"], main_process=False) == []  # a job's own parse
    assert train.is_file()
    lines = preflight.set_aside_damaged(run, ["--cores", "1"], main_process=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and err == [f"lediflow: {lines[0]}"] and "this snakemake call rebuilds it" in err[0]
    assert not train.exists() and train.with_name("train.npy.damaged").is_file()


def test_nothing_moves_while_another_snakemake_holds_the_run(run: Path, monkeypatch):
    flip_byte(run / "data" / "train.npy")
    monkeypatch.setattr(preflight.runlock, "holder", lambda folder: {"pid": 1})
    assert preflight.set_aside_damaged(run, [], main_process=True) == []
    assert (run / "data" / "train.npy").is_file()


def test_one_snakemake_call_rebuilds_damaged_prepared_data_bit_for_bit(tmp_path: Path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"run": {"results_dir": str(tmp_path / "results")}}))
    command = ["snakemake", "prepare_data", "--cores", "1", "--configfile", "configs/smoke.yaml", str(overlay)]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    train = tmp_path / "results" / "smoke" / "data" / "train.npy"
    clean = train.read_bytes()
    flip_byte(train)
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"lediflow: {train} is damaged" in again.stderr
    assert train.read_bytes() == clean  # (the stage replaces its folder whole, the damaged copy with it)
