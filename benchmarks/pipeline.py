"""Pipeline benchmarks: planning time, the smoke run end to end, per-stage peak RSS, a no-op `dvc repro`.

Everything runs in a throw-away copy of the repository (fresh git + DVC repo),
so the working tree and its results/ are never touched:
1. `snakemake -n` on the default params.yaml (the DAG of the full run: 84 jobs);
2. params.yaml := configs/smoke.yaml, then `snakemake --cores all`: end-to-end wall time;
   every job's Snakemake `benchmark:` file gives its peak RSS;
3. `dvc repro` once (records dvc.lock; Snakemake finds nothing to do), then again:
   the second is the no-op time a user pays to learn nothing changed.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SKIP = {"results", ".snakemake", "__pycache__", ".pytest_cache", ".ruff_cache", ".benchmarks", "tmp", ".git",
        "lediflow.egg-info", "dvc.lock"}


def _uncommitted(folder: str, names: list[str]) -> list[str]:
    """What a clean clone lacks: run outputs, caches, the DVC cache and lock of this working tree."""
    return [n for n in names if n in SKIP or (folder.endswith(".dvc") and n == "cache")]


def _timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """(wall seconds, stdout + stderr); a failed command ends the benchmark with its output."""
    # A cold lediflow cache (converted Inception weights, reference features), as on a fresh machine.
    env = {**os.environ, "LEDIFLOW_CACHE": str(cwd.parent / "cache")}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout + result.stderr


def planned_jobs(dry_run_output: str) -> int | None:
    """The 'total N' line of Snakemake's job stats."""
    found = re.search(r"^total\s+(\d+)\s*$", dry_run_output, re.MULTILINE)
    return int(found.group(1)) if found else None


def peak_rss_by_rule(bench_dir: Path) -> dict[str, tuple[float, int]]:
    """rule -> (max over its jobs of Snakemake's max_rss in MB, number of jobs); files are <rule>[-wildcards].tsv."""
    peaks: dict[str, list[float]] = defaultdict(list)
    for path in sorted(bench_dir.glob("*.tsv")):
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rss = row.get("max_rss", "NA")
        if rss not in ("NA", "-", ""):
            peaks[path.stem.split("-")[0]].append(float(rss))
    return {rule: (max(values), len(values)) for rule, values in peaks.items()}


def fresh_copy(root: Path) -> Path:
    repo = root / "repo"
    shutil.copytree(REPO, repo, ignore=_uncommitted)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    return repo


def run() -> list[tuple[str, str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="lediflow-bench-") as tmp:
        repo = fresh_copy(Path(tmp))
        snakemake = [sys.executable, "-m", "snakemake"]
        dry, output = _timed([*snakemake, "-n", "--cores", "all"], repo)
        rows.append(("snakemake -n, default params.yaml", f"{dry:.1f} s", "none set",
                     f"parse + DAG of the full run ({planned_jobs(output)} jobs)"))
        smoke = yaml.safe_load((repo / "configs" / "smoke.yaml").read_text())
        (repo / "params.yaml").write_text(yaml.safe_dump(smoke, sort_keys=False))
        wall, _ = _timed([*snakemake, "--cores", "all"], repo)
        rows.append(("smoke run end to end (snakemake --cores all)", f"{wall / 60:.1f} min",
                     "a few minutes (DESIGN.md 1)", "configs/smoke.yaml as params.yaml, fresh copy, cold cache"))
        for rule, (rss, jobs) in sorted(peak_rss_by_rule(repo / "results" / "smoke" / "benchmarks").items()):
            rows.append((f"peak RSS [{rule}]", f"{rss:.0f} MB", "none set", f"max over {jobs} job(s)"))
        _timed(["dvc", "repro"], repo)  # records dvc.lock; every Snakemake target is already up to date
        noop, _ = _timed(["dvc", "repro"], repo)
        rows.append(("dvc repro, nothing changed", f"{noop:.1f} s", "none set", "second repro after a full one"))
    return rows
