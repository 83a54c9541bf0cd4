"""The one place every stage's files pass through.

Atomicity: a file is written under a temporary name in its final folder and
renamed into place (os.replace is atomic on one filesystem); a stage with
several files writes them into a staging folder that is renamed into place as
a whole. A killed job therefore never leaves a file or folder that looks
finished. Every output folder gets a manifest.json with sha256, params and
provenance.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

MANIFEST = "manifest.json"


def _default_mode(directory: bool) -> int:
    """Permissions a plain open()/mkdir() would give; mkstemp/mkdtemp use 0600/0700."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask
_VERSIONED_PACKAGES = ("lediflow", "torch", "numpy", "diffusers", "timm", "torchdiffeq", "torch-fidelity", "open-clip-torch")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _default_mode(directory=False))
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(final: str | Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def write_json_atomic(final: str | Path, obj: Any) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `final` whole.

    Snakemake may have created `final` (empty) already, and an older complete
    version may be there; both are moved aside and removed only after the new
    folder is in place.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(stage, _default_mode(directory=True))
    try:
        yield stage
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(stage, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(
    folder: str | Path,
    stage: str,
    params: dict[str, Any],
    extra: dict[str, Any] | None = None,
    weights: dict[str, Any] | None = None,
    skip_dirs: tuple[str, ...] = ("checkpoints",),
) -> dict[str, Any]:
    """Describe every file in `folder` (recursively, but not trainer checkpoints) with size and sha256."""
    folder = Path(folder)
    files = {}
    candidates = (p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    for path in sorted(p for p in candidates if not set(p.relative_to(folder).parts[:-1]) & set(skip_dirs)):
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": files,
        "params": params,
        "weights": weights or {},
        "versions": package_versions(),
        **(extra or {}),
    }


def write_manifest(folder: str | Path, stage: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    manifest = build_manifest(folder, stage, params, **kwargs)
    write_json_atomic(Path(folder) / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST).read_text())


def verify_manifest(folder: str | Path) -> list[str]:
    """Return the files whose sha256 no longer matches the manifest (empty: all good)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    bad = []
    for rel, info in manifest["files"].items():
        path = folder / rel
        if not path.is_file() or sha256_file(path) != info["sha256"]:
            bad.append(rel)
    return bad
