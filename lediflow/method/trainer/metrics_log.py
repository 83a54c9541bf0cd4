"""metrics.jsonl: one line per logged step, trimmed on resume so each step is logged once."""

from __future__ import annotations

import json
from pathlib import Path

from lediflow.core import artifacts


def trim(path: Path, step: int) -> None:
    """Drop metric lines past the resumed step."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln)["step"] <= step]
    artifacts.write_text_atomic(path, "".join(ln + "\n" for ln in keep))


def last_loss(path: Path) -> float:
    """The last logged loss (a finished run resumed runs no step of its own), NaN without one."""
    if not path.is_file():
        return float("nan")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return float(json.loads(lines[-1])["loss"]) if lines else float("nan")
