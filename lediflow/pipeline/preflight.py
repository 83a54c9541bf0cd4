"""Before Snakemake plans a run: damaged artifacts set aside, so the same call rebuilds them.

Every stage verifies what it reads (lediflow.core.artifacts), but a stage that
finds damage can only fail: Snakemake planned the run while the file was still
there. Checked here, while the Snakefile is parsed and before the DAG exists, a
damaged file is moved aside as <name>.damaged, so Snakemake sees it missing and
re-makes it, and everything downstream of it, in the same call
(docs/provenance.md, "Verified inputs").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

from lediflow.core import artifacts
from lediflow.pipeline import runlock

# The sealed result files of a run (they carry the sha256 of their own content); everything else a stage
# writes is recorded in the manifest.json of its folder.
SEALED_GLOBS = ("scores/*.json", "scores/*/*.json", "timing/*.json")
# Snakemake invocations that only look (or write nothing a stage reads): they report damage, never move files.
LOOKING_FLAGS = frozenset({
    "--dry-run", "--dryrun", "--touch", "--lint", "--report", "--unlock", "--list", "--list-rules",
    "--list-target-rules", "--summary", "--detailed-summary", "--dag", "--rulegraph", "--filegraph", "--d3dag",
    "--cleanup-metadata", "--delete-all-output", "--delete-temp-output", "--archive", "--containerize",
    "--list-changes", "--lc", "--list-input-changes", "--li", "--list-params-changes", "--lp",
    "--list-code-changes", "--list-untracked", "--lu", "--export-cwl", "--print-compilation", "--version",
    "--help", "--conda-create-envs-only", "--create-envs-only",
})
LOOKING_SHORT = frozenset("ntlSDh")  # -n, -t, -l, -S, -D, -h as single-letter flags (also grouped, "-np")
REBUILD_NOW = "this snakemake call rebuilds it"


def looks_only(argv: Iterable[str]) -> bool:
    """Whether a Snakemake command line only inspects the workflow (a dry run, --touch, --report, ...)."""
    for arg in argv:
        if arg.split("=", 1)[0] in LOOKING_FLAGS:
            return True
        letters = arg[1:]
        if arg.startswith("-") and not arg.startswith("--") and letters.isalpha() and set(letters) & LOOKING_SHORT:
            return True
    return False


def _visible(path: Path, run: Path) -> bool:
    """Not inside a trainer's checkpoints/ (the trainer checks those itself) or a hidden staging folder."""
    parts = path.relative_to(run).parts
    return "checkpoints" not in parts and not any(part.startswith(".") for part in parts)


def damaged(run: Path) -> list[tuple[Path, str]]:
    """Every finished artifact of `run` that no longer matches its record, with the reason: a file against the
    manifest of its folder (byte count and sha256), a manifest that cannot be read, a sealed result against
    its own checksum. Files a manifest names but that are gone are left to Snakemake (it re-makes missing
    outputs)."""
    found: list[tuple[Path, str]] = []
    for manifest in sorted(run.rglob(artifacts.MANIFEST)):
        if not _visible(manifest, run):
            continue
        try:
            files = json.loads(manifest.read_text())["files"]
            entries = [(manifest.parent / rel, entry) for rel, entry in files.items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            found.append((manifest, "not a readable manifest"))
            continue
        for path, entry in entries:
            if not path.is_file():
                continue
            try:
                why = artifacts.entry_mismatch(path, entry)
            except (KeyError, TypeError):
                why = f"its entry in {manifest} cannot be read"
            if why:
                found.append((path, why))
    for pattern in SEALED_GLOBS:
        for path in sorted(run.glob(pattern)):
            try:
                why = artifacts.seal_mismatch(json.loads(path.read_text()))
            except (OSError, ValueError, UnicodeDecodeError):
                why = "not valid JSON"
            if why:
                found.append((path, why))
    return found


def set_aside_damaged(run: Path, argv: list[str], main_process: bool) -> list[str]:
    """The Snakefile's check before planning: one line per damaged artifact on stderr, and the file moved aside
    so this call re-makes it. Only the main Snakemake process of a real run moves anything, and never while
    another live Snakemake holds the run (its jobs may be writing); an inspecting call only reports."""
    if not main_process or not run.is_dir() or runlock.holder(run) is not None:
        return []
    act = not looks_only(argv)
    lines = []
    for path, why in damaged(run):
        if act:
            line = str(artifacts.quarantine(path, why, then=REBUILD_NOW))
        else:
            line = f"{path} is damaged ({why}); a snakemake call that runs jobs sets it aside and rebuilds it"
        lines.append(line)
        print(f"lediflow: {line}", file=sys.stderr)
    return lines
