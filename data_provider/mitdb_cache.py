"""On-disk cache of preprocessed MIT-BIH arrays: one .npz per set of output-affecting settings,
or, with ``data.memory_map=true``, a folder of .npy files under the same key whose series
(beats "x", windows "wx") are memory-mapped instead of read.

The key hashes the preprocessing settings, the record list and the SHA-256 of every input
file (.hea, .dat, .atr), so changed settings or changed bytes never return stale arrays: a
record damaged in place and later restored gets its own key each time. Reading, writing and
unusable cache directories are handled by npz_cache.py (atomic writes; a cache that cannot
be used is reported once and skipped).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import npz_cache

CACHE_VERSION = 1  # bump when the preprocessing code changes its output
# the large arrays, memory-mapped; the per-beat ones (labels, RR, records) are small and read
MAPPED = ("x", "wx")
BEAT_KEYS = ("x", "y", "rr", "sample", "symbol", "record", "fs")
WINDOW_KEYS = ("wx", "wrecord")


def cache_key(settings, records, digests: dict[str, str], extra: dict) -> str:
    """``digests``: file name -> sha256 of every .hea/.dat/.atr of ``records``."""
    fingerprint = {str(r): [digests[f"{r}{ext}"] for ext in (".hea", ".dat", ".atr")]
                   for r in sorted(records)}
    payload = {"version": CACHE_VERSION, "settings": asdict(settings),
               "records": sorted(int(r) for r in records), "extra": extra,
               "files": fingerprint}
    blob = json.dumps(payload, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def folder(cache_root) -> Path | None:
    return npz_cache.folder(cache_root, "mitdb")


def load(path: Path) -> dict[str, np.ndarray] | None:
    return npz_cache.load(path)


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    npz_cache.save(path, arrays)


def load_mapped(path: Path, windows: bool) -> dict | None:
    """The arrays of the .npy folder ``path``, "x" and "wx" as MappedFiles; None when absent
    or incomplete (``windows``: the SSL windows must be there too)."""
    required = BEAT_KEYS + (WINDOW_KEYS if windows else ())
    return npz_cache.load_npy_folder(path, required, MAPPED)


def save_mapped(path: Path, arrays: dict[str, np.ndarray]) -> None:
    npz_cache.save_npy_folder(path, arrays)
