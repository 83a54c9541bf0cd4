"""The paper's datasets (FFHQ, AFHQ, LHQ): fetch an archive, extract, use as an image folder.

Only AFHQ has a direct, scriptable archive address (StarGAN v2's release).
FFHQ (Google Drive) and LHQ (Yandex Disk) are published behind interactive
share pages, so they have no built-in address: download them once by hand
and set data.path to the archive or the extracted folder, or set data.url to
a direct mirror. No publisher lists a sha256 for these archives; the digest
of what was downloaded is recorded in the manifest, and data.sha256 pins it.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lediflow.pipeline.data.download import download
from lediflow.core.errors import LediflowError


@dataclass(frozen=True)
class PaperDataset:
    name: str
    url: str | None
    sha256: str | None
    filename: str
    homepage: str


REGISTRY: dict[str, PaperDataset] = {
    "ffhq": PaperDataset("ffhq", None, None, "ffhq.zip", "https://github.com/NVlabs/ffhq-dataset"),
    "afhq": PaperDataset(
        "afhq", "https://www.dropbox.com/s/t9l9o3vsx2jai3z/afhq.zip?dl=1", None, "afhq.zip",
        "https://github.com/clovaai/stargan-v2",
    ),
    "lhq": PaperDataset("lhq", None, None, "lhq.zip", "https://github.com/universome/alis"),
}


def _is_archive(path: Path) -> bool:
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def extract(archive: Path, target: Path) -> Path:
    """Extract into `target` via a staging folder, so a killed extraction is never mistaken for a whole one."""
    if target.is_dir():
        return target
    stage = target.with_name(target.name + ".extracting")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(stage)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as handle:
                handle.extractall(stage, filter="data")
        else:
            raise LediflowError(f"{archive} is neither a zip nor a tar archive; point data.path at the dataset archive or its folder")
        stage.replace(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def fetch(name: str, path: str | None, url: str | None, sha256: str | None, cache_dir: Path) -> tuple[Path, dict]:
    """Return the image folder of dataset `name` and provenance for the manifest."""
    entry = REGISTRY[name]
    if path is not None:
        local = Path(path)
        if local.is_dir():
            return local, {"how": "path", "path": str(local)}
        if _is_archive(local):
            return extract(local, cache_dir / f"{name}-extracted"), {"how": "path-archive", "path": str(local)}
        raise LediflowError(f"data.path {local} is neither a folder nor a zip/tar archive of {name}; fix data.path")
    address = url or entry.url
    if address is None:
        raise LediflowError(
            f"{name} has no direct download address; fetch it from {entry.homepage} and set "
            "data.path to the archive or folder (or data.url to a direct mirror)"
        )
    archive = cache_dir / entry.filename
    digest = download(address, archive, sha256=sha256 or entry.sha256)
    return extract(archive, cache_dir / f"{name}-extracted"), {"how": "download", "url": address, "sha256": digest}
