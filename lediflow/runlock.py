"""Who may write under results/<run>/: the one Snakemake invocation that runs it.

Snakemake locks the files of its DAG, but only after it has parsed the
Snakefile, and a dry run takes no lock at all. The run's resolved params are
therefore written by the Snakefile's `onstart` hook (which runs only for a real
execution, after Snakemake's lock), together with results/<run>/.run.lock
naming the holder's pid. A second invocation, or a direct CLI call, whose
params differ from those of a live holder is refused with one line; a lock left
by a killed run (its pid gone) is ignored.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import yaml

from lediflow import artifacts
from lediflow.config import Params, run_dir
from lediflow.errors import ConfigError

LOCK_NAME = ".run.lock"
HEADER = "# Resolved params of this run (written by the Snakefile; do not edit).\n"
TOKEN_ENV = "LEDIFLOW_RUN_TOKEN"  # set by the holder, inherited by its jobs


def params_text(params: Params) -> str:
    return HEADER + yaml.safe_dump(params, sort_keys=False)


def _pid_alive(pid: int) -> bool:
    """A live process that is a Snakemake (a killed run's pid may have been reused by anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return b"snakemake" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid


def holder(folder: Path) -> dict[str, Any] | None:
    """The live run holding `folder`, or None (no lock, a stale one, or one from another host)."""
    lock = folder / LOCK_NAME
    try:
        info = json.loads(lock.read_text())
        pid, host = int(info["pid"]), info["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or not _pid_alive(pid):
        return None
    return info


def refuse_if_changed(params: Params, who: str) -> None:
    """One-line refusal when a live run holds this run folder with other params than `params`."""
    folder = run_dir(params)
    info = holder(folder)
    if info is None or os.environ.get(TOKEN_ENV) == info.get("token"):
        return
    current = folder / "params.yaml"
    if current.is_file() and current.read_text() == params_text(params):
        return
    raise ConfigError(f"run {folder} is being run by Snakemake (pid {info['pid']}) with other params; {who} "
                      "would change it under that run - wait for it to finish, or set run.name to start another run")


def begin(params: Params) -> None:
    """The onstart hook: write the resolved params and take the run's lock (the caller holds Snakemake's)."""
    folder = run_dir(params)
    token = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
    artifacts.write_json_atomic(folder / LOCK_NAME, {"pid": os.getpid(), "host": socket.gethostname(),
                                                     "token": token})
    os.environ[TOKEN_ENV] = token
    text = params_text(params)
    params_file = folder / "params.yaml"
    if not params_file.is_file() or params_file.read_text() != text:  # unchanged: no mtime churn
        artifacts.write_text_atomic(params_file, text)


def end(params: Params) -> None:
    """The onsuccess/onerror hook: release the lock if it is still ours."""
    lock = run_dir(params) / LOCK_NAME
    info = holder(run_dir(params))
    if info is not None and info.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)
