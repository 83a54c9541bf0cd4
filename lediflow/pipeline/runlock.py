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

from lediflow.core import artifacts
from lediflow.pipeline.config import Params
from lediflow.pipeline.paths import run_dir
from lediflow.core.errors import ConfigError

LOCK_NAME = ".run.lock"
HEADER = "# Resolved params of this run (written by the Snakefile; do not edit).\n"
TOKEN_ENV = "LEDIFLOW_RUN_TOKEN"  # set by the holder, inherited by its jobs


def params_text(params: Params) -> str:
    return HEADER + yaml.safe_dump(params, sort_keys=False)


def _pid_alive(pid: int, cwd: str | None) -> bool:
    """A live Snakemake in the same project folder (a killed run's pid may have been reused by anything,
    another project's Snakemake included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        if b"snakemake" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        return cwd is None or os.path.realpath(f"/proc/{pid}/cwd") == os.path.realpath(cwd)
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
    if host != socket.gethostname() or not _pid_alive(pid, info.get("cwd")):
        return None
    return info


# where a run lives, not what it holds: a copy of a run under another results_dir is the same run
_LOCATION_KEYS = {"run.results_dir"}


def _differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf where two resolved params differ. A key the recorded
    params lack came into the schema after the run was made; its default keeps the old behaviour, so it is no
    difference."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in old:
            if f"{prefix}{key}" not in _LOCATION_KEYS:
                found += _differences(old[key], new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _recorded(folder: Path) -> Params | None:
    try:
        return yaml.safe_load((folder / "params.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None


def refuse_if_changed(params: Params, who: str, direct: bool = True) -> None:
    """One-line refusal when `params` differ (as resolved values, not as YAML text) from those the run folder
    was made with: a direct stage call must not mix other params into a run's artifacts, which the next
    `snakemake` would then publish. The jobs of the Snakemake run holding the folder (they carry its token) pass;
    a new Snakemake invocation (direct=False) is refused only while another one holds the folder, since its own
    onstart hook records the new params before any job runs."""
    folder = run_dir(params)
    info = holder(folder)
    if info is not None and os.environ.get(TOKEN_ENV) == info.get("token"):
        return
    if info is None and not direct:
        return
    recorded = _recorded(folder)
    if not isinstance(recorded, dict) or recorded == params:
        return
    diff = _differences(recorded, params)
    if not diff:
        return
    key, old, new = diff[0]
    more = f" and {len(diff) - 1} more key(s)" if len(diff) > 1 else ""
    if info is not None:
        raise ConfigError(f"run {folder} is being run by Snakemake (pid {info['pid']}) with other params ({key}: "
                          f"{old!r} there, {new!r} here{more}); {who} would change it under that run - wait for it "
                          "to finish, or set run.name to start another run")
    raise ConfigError(f"run {folder} was made with other params ({key}: {old!r} in its params.yaml, {new!r} here"
                      f"{more}); {who} would mix them into its artifacts - add --set run.name=<new name> to write a "
                      "run of its own, or change params.yaml and run snakemake")


def begin(params: Params) -> None:
    """The onstart hook: write the resolved params and take the run's lock (the caller holds Snakemake's)."""
    folder = run_dir(params)
    token = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
    artifacts.write_json_atomic(folder / LOCK_NAME, {"pid": os.getpid(), "host": socket.gethostname(),
                                                     "token": token, "cwd": os.getcwd()})
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
