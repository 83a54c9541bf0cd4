import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lediflow.core import artifacts


def test_atomic_path_keeps_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_old_file_whole(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    artifacts.write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_staged_dir_replaces_folder_and_cleans_up(tmp_path: Path):
    final = tmp_path / "data"
    final.mkdir()
    (final / "stale.npy").write_text("stale")
    with artifacts.staged_dir(final) as stage:
        (stage / "train.npy").write_text("x")
    assert sorted(p.name for p in final.iterdir()) == ["train.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_staged_dir_failure_keeps_previous_version(tmp_path: Path):
    final = tmp_path / "data"
    final.mkdir()
    (final / "good.npy").write_text("good")
    with pytest.raises(ValueError):
        with artifacts.staged_dir(final) as stage:
            (stage / "partial.npy").write_text("partial")
            raise ValueError
    assert [p.name for p in final.iterdir()] == ["good.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_sigkill_mid_write_leaves_no_finished_looking_file(tmp_path: Path):
    target = tmp_path / "big.bin"
    script = (
        "import sys, time\n"
        "from lediflow.core.artifacts import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(".tmp-" in name for name in leftovers)


def test_manifest_hashes_and_detects_change(tmp_path: Path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    manifest = artifacts.write_manifest(tmp_path, "test", {"k": 1})
    assert manifest["files"]["a.bin"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert json.loads((tmp_path / "manifest.json").read_text())["params"] == {"k": 1}
    assert artifacts.verify_manifest(tmp_path) == []
    (tmp_path / "a.bin").write_bytes(b"abd")
    assert artifacts.verify_manifest(tmp_path) == ["a.bin"]


def test_every_manifest_names_the_code_that_made_it(tmp_path: Path):
    from lediflow.core import provenance

    (tmp_path / "a.txt").write_text("x")
    manifest = artifacts.write_manifest(tmp_path, "test", {})
    state = manifest["code"]
    assert set(state) == {"commit", "dirty", "lediflow"} and state["lediflow"]
    # the tests run from a checkout: its HEAD, not "not a git checkout" (the package moving one folder deeper
    # once made every artifact say that)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert head.returncode == 0 and state["commit"] == head.stdout.strip()
    assert provenance.describe([None, None]).startswith("carry no record")
    clean = {"commit": "a" * 40, "dirty": False, "lediflow": "0.1.0"}
    assert provenance.describe([clean, clean]) == "made by commit aaaaaaaaaaaa"
    assert provenance.describe([clean, {**clean, "dirty": True}, None]) == (
        "made by commit aaaaaaaaaaaa with uncommitted code changes; 1 of 3 inputs without a record")
