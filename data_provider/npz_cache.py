"""On-disk .npz caches of parsed or preprocessed arrays, shared by the data families.

A cache only saves time, so it never fails a run: a cache directory that cannot be created,
read or written is reported once per run (naming it and ``paths.cache_dir`` / CACHE_DIR) and
the run goes on without the cache; a damaged cache file is rebuilt. Keys are chosen by the
callers from the content (sha256) of their inputs. Files are written atomically
(utils/atomic.py), so a reader never sees half of one.
"""
from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from utils.atomic import save_npz_atomic

log = logging.getLogger(__name__)

_reported: set[str] = set()  # cache directories already reported as unusable in this run


def folder(root, sub: str) -> Path | None:
    """``root/sub``, created if needed, or None when there is no usable cache there."""
    if root is None or str(root) == "":
        return None
    path = Path(str(root)) / sub
    try:
        path.mkdir(parents=True, exist_ok=True)
        usable = os.access(path, os.R_OK | os.W_OK | os.X_OK)
        reason = "no read/write permission"
    except OSError as e:
        usable, reason = False, str(e)
    if not usable:
        _report(path, reason)
        return None
    return path


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays cached at ``path``, or None (absent, unreadable or damaged: rebuild)."""
    try:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except PermissionError as e:
        _report(path.parent, str(e))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        log.warning("ignoring the damaged cache file %s (%s); rebuilding it", path, e)
    return None


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache file; a failure costs the next run time, not this run."""
    try:
        save_npz_atomic(arrays, path)
    except OSError as e:
        _report(path.parent, str(e))


def _report(directory: Path, reason: str) -> None:
    key = str(directory)
    if key in _reported:
        return
    _reported.add(key)
    log.warning("the cache directory %s cannot be used (%s); going on without a cache, so data "
                "is parsed again on every run. Set paths.cache_dir (or the CACHE_DIR environment "
                "variable) to a writable folder to keep the cache.", directory, reason)
