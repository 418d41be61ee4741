"""Finding the MIT-BIH record files, fetching the missing ones (verified) when allowed, and
checking the local ones against the official sha256 of data_provider/mitdb_manifest.py."""
from __future__ import annotations

import logging
from pathlib import Path

from utils.download import DataUnavailable, DownloadError, fetch, sha256_of

from .mitdb_manifest import MITDB_FILES

log = logging.getLogger(__name__)

OFFICIAL_PAGE = "https://physionet.org/content/mitdb/1.0.0/"
EXTENSIONS = (".hea", ".atr", ".dat")  # small files first: a bad mirror fails fast


def missing_files(folder: Path, records) -> list[str]:
    return [f"{r}{ext}" for r in records for ext in EXTENSIONS if not (folder / f"{r}{ext}").is_file()]


def ensure_records(folder: Path, records, *, download: bool, source_url: str) -> None:
    """Raise a clear error if any record file is missing, or download it if allowed."""
    missing = missing_files(folder, records)
    if not missing:
        return
    if not download:
        shown = ", ".join(missing[:12]) + (f", ... ({len(missing)} files)" if len(missing) > 12 else "")
        raise DataUnavailable(
            f"MIT-BIH Arrhythmia Database files missing in {folder}: {shown}. Get the database "
            f"(.hea/.dat/.atr of each record) from {OFFICIAL_PAGE} and put the files in that "
            f"folder (set paths.data_dir or DATA_DIR, and data.subdir), or run with "
            f"data.download=true to fetch them from data.source_url ({source_url}).")
    unknown = [name for name in missing if name not in MITDB_FILES]
    if unknown:
        raise DownloadError(f"no known size/checksum for {', '.join(unknown)}, so they cannot be "
                            f"downloaded safely; MIT-BIH records are 100-234 (see {OFFICIAL_PAGE}).")
    base = source_url if source_url.endswith("/") else source_url + "/"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {folder} to download MIT-BIH into ({e}); point "
                            f"paths.data_dir at a writable folder") from e
    for name in missing:
        size, sha = MITDB_FILES[name]
        try:
            fetch(base + name, folder / name, size=size, sha256=sha)
        except PermissionError as e:
            raise DownloadError(f"cannot write {folder / name} ({e}); the data folder is read-only, "
                                f"point paths.data_dir at a writable folder to download") from e


def record_digests(folder: Path, records) -> dict[str, str]:
    """sha256 of every .hea/.dat/.atr of ``records``, each file read once per run (the same
    digests check the files and key the preprocessing cache)."""
    return {f"{r}{ext}": sha256_of(folder / f"{r}{ext}") for r in records for ext in EXTENSIONS}


def verify_records(folder: Path, digests: dict[str, str], *, verify: bool) -> None:
    """Refuse a local file whose sha256 is not the official one (data.verify_files=true), so
    a damaged or edited record never trains a model unnoticed."""
    if not verify:
        changed = [n for n, got in digests.items() if MITDB_FILES.get(n, (0, ""))[1] != got]
        if changed:
            log.warning("data.verify_files=false: using %d MIT-BIH files in %s that differ from "
                        "the official ones: %s", len(changed), folder, ", ".join(changed[:12]))
        return
    for name, got in digests.items():
        if name not in MITDB_FILES:
            raise ValueError(
                f"{folder / name} is not a file of the official MIT-BIH database (records "
                f"100-234, {OFFICIAL_PAGE}), so it has no official checksum to verify; set "
                f"data.verify_files=false to use it on purpose.")
        expected = MITDB_FILES[name][1]
        if got != expected:
            raise ValueError(
                f"{folder / name} is not the official file: its sha256 is {got}, the official "
                f"one is {expected} (the file is damaged or was modified). Delete it and run "
                f"with data.download=true to fetch it again (or get it from {OFFICIAL_PAGE}), "
                f"or set data.verify_files=false to use a modified copy on purpose.")
