"""Finding the MIT-BIH record files, and fetching the missing ones (verified) when allowed."""
from __future__ import annotations

from pathlib import Path

from utils.download import DataUnavailable, DownloadError, fetch

from .mitdb_manifest import MITDB_FILES

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
