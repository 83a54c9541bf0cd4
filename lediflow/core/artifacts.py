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

from lediflow.core.errors import LediflowError
from lediflow.core.provenance import code_state

MANIFEST = "manifest.json"
DAMAGED_SUFFIX = ".damaged"
# Above this size a file is checked by its byte count only: hashing a 13 GB image array on every
# load would cost more than the stage (truncation, the common damage, changes the count).
HASH_LIMIT_BYTES = 1 << 30


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
def _new_parents(folder: Path) -> Iterator[None]:
    """mkdir -p `folder`; if the block fails, remove the folders it created (a failed stage leaves no empty tree)."""
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only if still empty
        raise


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only on success."""
    final = Path(final)
    with _new_parents(final.parent):
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
    with _new_parents(final.parent):
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
        "code": code_state(),
        **(extra or {}),
    }


def write_manifest(folder: str | Path, stage: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    manifest = build_manifest(folder, stage, params, **kwargs)
    write_json_atomic(Path(folder) / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path, rebuild: str = "") -> dict[str, Any]:
    return read_json(Path(folder) / MANIFEST, rebuild)


REBUILD_NEXT = "run snakemake again and it rebuilds the file (or rerun the stage that wrote it)"


def quarantine(path: str | Path, why: str, then: str = REBUILD_NEXT) -> LediflowError:
    """Move a damaged artifact aside (kept as <name>.damaged) so Snakemake sees it missing and rebuilds it."""
    path = Path(path)
    aside = path.with_name(path.name + DAMAGED_SUFFIX)
    os.replace(path, aside)
    return LediflowError(f"{path} is damaged ({why}); moved it to {aside.name} - {then}")


def _missing(path: Path, rebuild: str) -> LediflowError:
    return LediflowError(f"{path} is missing; {rebuild or 'run snakemake (it builds it) first'}")


def read_json(path: str | Path, rebuild: str = "") -> Any:
    """A JSON artifact; missing or unparsable -> one line (a damaged one is moved aside for a rebuild)."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, rebuild)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise quarantine(path, "not valid JSON") from None


SEAL = "content_sha256"  # the checksum a small result file (score, timing, floor) carries of its own content


def content_digest(obj: dict[str, Any]) -> str:
    body = {k: v for k, v in obj.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_sealed_json(final: str | Path, obj: dict[str, Any]) -> None:
    """A result file that carries the sha256 of its own content: the tables refuse it once edited."""
    write_json_atomic(final, {**obj, SEAL: content_digest(obj)})


def read_sealed_json(path: str | Path, rebuild: str = "") -> dict[str, Any]:
    """A sealed result file, refused (moved aside for a rebuild) when its content no longer matches its seal or
    it carries none: an edited number never reaches a table."""
    obj = read_json(path, rebuild)
    why = seal_mismatch(obj)
    if why:
        raise quarantine(path, why)
    return obj


def seal_mismatch(obj: Any) -> str | None:
    """Why a sealed result's content cannot be trusted, or None when it matches its own checksum."""
    if not isinstance(obj, dict) or SEAL not in obj:
        return "it carries no content checksum, so nothing tells whether it was edited"
    if obj[SEAL] != content_digest(obj):
        return "its content no longer matches the checksum written with it"
    return None


def _manifest_entry(path: Path, levels: int = 3) -> dict[str, Any] | None:
    """The manifest entry that describes `path` (its folder's manifest, or one up to `levels` folders up)."""
    for folder in list(path.parents)[:levels]:
        if (folder / MANIFEST).is_file():
            entry = read_manifest(folder).get("files", {}).get(path.relative_to(folder).as_posix())
            if entry is not None:
                return entry
    return None


def verify_file(path: str | Path, rebuild: str = "", required: bool = True) -> Path:
    """`path`, after checking it against the sha256 (byte count above HASH_LIMIT_BYTES) its manifest records.

    A file no manifest records counts as damaged (moved aside, so the stage that writes it runs again): a
    deleted manifest must not turn verification off. `required=False` is for files a user brings (a
    pretrained autoencoder folder), which carry no manifest of ours.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, rebuild)
    entry = _manifest_entry(path)
    if entry is None:
        if not required:
            return path
        raise quarantine(path, "no manifest.json beside it (or up to two folders up) records its checksum")
    why = entry_mismatch(path, entry)
    if why:
        raise quarantine(path, why)
    return path


def entry_mismatch(path: Path, entry: dict[str, Any]) -> str | None:
    """Why `path` differs from its manifest entry (byte count, then sha256 up to HASH_LIMIT_BYTES), or None."""
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"{size} bytes where its manifest records {entry['bytes']}"
    if size <= HASH_LIMIT_BYTES and sha256_file(path) != entry["sha256"]:
        return "its sha256 differs from the one its manifest records"
    return None


def load_npy(path: str | Path, rebuild: str = "", mmap: bool = True) -> Any:
    """np.load of a verified .npy artifact; one line (and a rebuild) when it is damaged."""
    import numpy as np

    path = verify_file(path, rebuild)
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError):
        raise quarantine(path, "not a readable .npy array") from None


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
