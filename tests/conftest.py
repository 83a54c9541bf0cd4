"""Shared fixtures: a loopback HTTP server with Range support, small image trees, one finished smoke run."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from `server.files` (name -> bytes) with HTTP Range support.

    `server.cut_first` > 0 makes the first full response stop after that many
    bytes (Content-Length still announces the whole file), simulating a dropped
    connection so the client has to resume.
    """

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        name = self.path.lstrip("/").split("?")[0]
        data = self.server.files.get(name)
        self.server.requests.append((name, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        if header and header.startswith("bytes="):
            start = int(header[len("bytes="):].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_first and not header:
            self.wfile.write(body[: self.server.cut_first])
            self.server.cut_first = 0
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def http_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    server.files = {}
    server.requests = []
    server.cut_first = 0
    server.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make_image_tree(root: Path, count: int = 12, size: tuple[int, int] = (40, 30)) -> list[Path]:
    """Random RGB images as PNG, JPEG and WebP in nested folders."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        ext = (".png", ".jpg", ".webp")[i % 3]
        path = root / f"class{i % 2}" / f"img{i:03d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    make_image_tree(root)
    return root


TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def tiny_clip_weights(tmp_path: Path) -> Path:
    """A randomly initialised open_clip CLIP of the ViT-L-14-336 class, registered under a test name."""
    import open_clip

    config_dir = tmp_path / "clip_configs"
    config_dir.mkdir()
    (config_dir / "lediflow-tiny-test.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config_dir)
    torch.manual_seed(0)
    model = open_clip.create_model("lediflow-tiny-test")
    assert type(model).__name__ == "CLIP"
    path = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return path


SMOKE_RUN_ENV = "LEDIFLOW_SMOKE_RUN"  # a finished `snakemake --configfile configs/smoke.yaml` run folder
# `lediflow warm --` before a command: every lediflow stage it starts is forked from one server (docs/gpu.md,
# "Warm start"); the end-to-end tests of the studies run so, as their smoke-sized jobs are mostly start-up
WARM = [sys.executable, "-m", "lediflow", "warm", "--"]


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory) -> Path:
    """The results folder of one finished smoke run (`smoke/` in it), shared by the slow tests: read it, plan
    against it, or copy it (`copy_run`) before changing anything.

    The run is the one $LEDIFLOW_SMOKE_RUN names (.ci/run passes the one its smoke pipeline step just made, so
    CI trains the smoke models once); without the variable it is made here, by the command a user types. It is
    used where it lies, because Snakemake keeps its records (params, code) under the output paths as the run
    wrote them: `results_dir_setting` gives the run.results_dir that names those same paths.
    """
    given = os.environ.get(SMOKE_RUN_ENV)
    if given:
        run = Path(given).resolve()
        if not (run / "tables" / "headline.md").is_file():
            pytest.fail(f"{SMOKE_RUN_ENV}={given} is not a finished smoke run (no tables/headline.md)")
        _assert_released(run)
        return run.parent
    results = tmp_path_factory.mktemp("smoke") / "results"
    overlay = results.parent / "overlay.yaml"
    overlay.write_text(f"run: {{results_dir: {json.dumps(str(results))}}}\n")
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "configs/smoke.yaml",
                           str(overlay)], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail("the smoke run failed:\n" + (done.stdout + done.stderr)[-3000:])
    _assert_released(results / "smoke")
    return results


def flip_byte(path: Path) -> None:
    """Damage a file the way a bad disk or a partial copy does: one byte in the middle changed."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def results_dir_setting(results: Path) -> str:
    """run.results_dir as the run was made with it: relative to the repository where it lies inside it."""
    return os.path.relpath(results, REPO) if results.is_relative_to(REPO) else str(results)


def copy_run(results: Path, to: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A copy of the smoke run (mtimes kept) under `to`/smoke, without the top-level folders `leave_out`; its
    params.yaml names the copy's results_dir, as the Snakefile would write it, so a direct stage call with it
    reads and writes the copy, never the original."""
    import yaml

    from lediflow.pipeline import runlock

    shutil.copytree(results / "smoke", to / "smoke", symlinks=True,
                    ignore=lambda folder, names: [n for n in names if n in leave_out and Path(folder).name == "smoke"])
    recorded = to / "smoke" / "params.yaml"
    params = yaml.safe_load(recorded.read_text())
    params["run"]["results_dir"] = results_dir_setting(to)
    stat = recorded.stat()
    recorded.write_text(runlock.params_text(params))
    os.utime(recorded, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return to


def _assert_released(run: Path) -> None:
    from lediflow.pipeline import runlock

    assert not (run / runlock.LOCK_NAME).exists(), "a finished run releases its lock"
