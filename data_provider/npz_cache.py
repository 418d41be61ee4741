"""On-disk caches of parsed or preprocessed arrays, shared by the data families: one .npz per
key, or (for memory maps) a folder of .npy files, one per array.

A cache only saves time, so it never fails a run: a cache directory that cannot be created,
read or written is reported once per run (naming it and ``paths.cache_dir`` / CACHE_DIR) and
the run goes on without the cache; a damaged cache file is rebuilt. Keys are chosen by the
callers from the content (sha256) of their inputs. Files are written atomically
(utils/atomic.py), and a folder of .npy files appears whole (written under a temporary name,
then renamed), so a reader never sees half of one.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from utils.atomic import save_npz_atomic

from .memmap import MappedFile

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


def load_npy_folder(path: Path, required, mapped) -> dict | None:
    """The arrays of the .npy folder ``path``: those named in ``mapped`` as ``MappedFile``s
    (memory-mapped, checked by opening them), the others read into memory; None when the
    folder is absent, or lacks one of ``required`` or is damaged (then it is removed, to be
    rebuilt)."""
    try:
        if not path.is_dir():
            return None
        files = {f.stem: f for f in path.glob("*.npy")}
        missing = set(required) - set(files)
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))}")
        return {name: _open(f, name in mapped) for name, f in sorted(files.items())}
    except PermissionError as e:
        _report(path.parent, str(e))
    except (OSError, ValueError, EOFError) as e:
        log.warning("ignoring the damaged cache folder %s (%s); rebuilding it", path, e)
        shutil.rmtree(path, ignore_errors=True)
    return None


def _open(file: Path, mapped: bool):
    if not mapped:
        return np.load(file, allow_pickle=False)
    opened = MappedFile(file)
    opened.array                          # a truncated file fails here, not in a batch
    return opened


def save_npy_folder(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one .npy per array into the folder ``path``, which appears whole or not at all;
    when another process finished the same folder first, its copy is kept. A failure costs
    the next run time, not this run."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent))
        for name, array in arrays.items():
            _save_npy(tmp / f"{name}.npy", array)
        os.chmod(tmp, 0o755)              # mkdtemp makes it owner-only; caches are for reading
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():         # not a concurrent writer's finished folder
                raise
    except OSError as e:
        _report(path.parent, str(e))
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _save_npy(file: Path, array: np.ndarray) -> None:
    with open(file, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(file, 0o644)


def _report(directory: Path, reason: str) -> None:
    key = str(directory)
    if key in _reported:
        return
    _reported.add(key)
    log.warning("the cache directory %s cannot be used (%s); going on without a cache, so data "
                "is parsed again on every run. Set paths.cache_dir (or the CACHE_DIR environment "
                "variable) to a writable folder to keep the cache.", directory, reason)
