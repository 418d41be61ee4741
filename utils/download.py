"""Verified, atomic downloads of dataset files from their official public source.

A file is written to ``<dest>.part`` first, checked against the expected size and/or
SHA-256, and only then renamed into place, so a crash or a bad mirror never leaves a
half-written or wrong file where a loader would read it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    pass


class DataUnavailable(FileNotFoundError):
    """A dataset's files are not in the data directory and were not downloaded; the message
    names the dataset, where it was looked for and how to get it."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: str | os.PathLike, *, size: int | None = None,
          sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there."""
    dest = Path(dest)
    if dest.exists() and _matches(dest, size, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or size
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for block in iter(lambda: r.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
    except OSError as e:  # URLError and HTTPError are OSErrors
        part.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url}: {e}. Check the network or place the "
                            f"file at {dest} by hand.") from e
    if not _matches(part, size, sha256):
        got = f"{part.stat().st_size} bytes, sha256 {sha256_of(part)}"
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloaded {url} does not match the expected "
                            f"size={size} sha256={sha256} (got {got}); nothing was written to {dest}.")
    os.replace(part, dest)
    checked = " and ".join(k for k, v in (("size", size), ("sha256", sha256)) if v is not None)
    log.info("downloaded %s to %s%s", url, dest, f" ({checked} verified)" if checked else "")
    return dest


def _matches(path: Path, size: int | None, sha256: str | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    if sha256 is not None and sha256_of(path) != sha256.lower():
        return False
    return True
