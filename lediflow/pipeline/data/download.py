"""Resumable HTTP(S) download with sha256 verification.

A partial download lives at `<dest>.part` and is resumed with an HTTP Range
request; the finished file is renamed onto `dest` only after its checksum has
been verified, so `dest` existing means "complete and verified".
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from lediflow.core.artifacts import sha256_file
from lediflow.core.errors import LediflowError

_CHUNK = 1 << 16


class DownloadError(LediflowError):
    """Network failure or checksum mismatch."""


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "lediflow"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    progress: bool = True,
) -> str:
    """Download `url` to `dest`, resuming `<dest>.part`; returns the file's sha256.

    `sha256=None` accepts any content (the caller records the digest).
    """
    dest = Path(dest)
    if dest.is_file():
        digest = sha256_file(dest)
        if sha256 is None or digest == sha256:
            return digest
        dest.unlink()  # a stale or foreign file under our name: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for _ in range(retries + 1):
        start = part.stat().st_size if part.exists() else 0
        try:
            with _open(url, start, timeout) as response:
                resumed = start > 0 and response.status == 206
                if start and not resumed:
                    start = 0  # server ignored Range: start over
                total = response.headers.get("Content-Length")
                total = int(total) + start if total is not None else None
                with open(part, "ab" if resumed else "wb") as handle, tqdm(
                    total=total, initial=start, unit="B", unit_scale=True,
                    desc=dest.name, disable=not progress,
                ) as bar:
                    while block := response.read(_CHUNK):
                        handle.write(block)
                        bar.update(len(block))
            if total is not None and part.stat().st_size < total:
                raise ConnectionError(f"connection closed at {part.stat().st_size} of {total} bytes")
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 416:
                break  # requested range starts at the end: the part is complete
            last_error = exc
    else:
        raise DownloadError(
            f"could not download {url} ({last_error}); check the network or put the file at {dest} yourself"
        )
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256}; "
            "the file was removed, retry or set data.sha256 if the source changed on purpose"
        )
    os.replace(part, dest)
    return digest

