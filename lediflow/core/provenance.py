"""Which code made an artifact: the git commit of the checkout, whether its code had uncommitted changes, and
the package version. Recorded in every manifest and score file, and gathered by the tables stage into
results/<run>/tables/provenance.json, so committed results name the commit that made them.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

# the files whose changes change what a stage computes: a run's own results/ never make the tree "dirty"
CODE_PATHS = ("lediflow", "workflow", "Snakefile", "pyproject.toml")


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_state() -> dict:
    """{'commit', 'dirty', 'lediflow'} of the code this process runs (one git call per process)."""
    try:
        version = metadata.version("lediflow")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[2]  # the checkout holding the lediflow package (lediflow/core/ here)
    commit = _git(root, "rev-parse", "HEAD") if (root / ".git").exists() else None
    if commit is None:
        return {"commit": "unknown (not a git checkout)", "dirty": None, "lediflow": version}
    changes = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None, "lediflow": version}


def describe(states: list[dict | None]) -> str:
    """One phrase for a caption: the commit(s) that made these inputs, and whether any was uncommitted code."""
    recorded = [s for s in states if s]
    if not recorded:
        return "carry no record of the code that made them (scored before 2026-12-07)"
    commits = sorted({s["commit"][:12] for s in recorded})
    dirty = any(s.get("dirty") for s in recorded)
    missing = len(states) - len(recorded)
    text = f"made by commit {', '.join(commits)}" + (" with uncommitted code changes" if dirty else "")
    return text + (f"; {missing} of {len(states)} inputs without a record" if missing else "")
