"""On-disk cache of preprocessed MIT-BIH arrays: one .npz per set of output-affecting settings.

The key hashes the preprocessing settings, the record list and a fingerprint of the input
files (sizes of .hea/.dat, SHA-256 of the small .atr), so changed settings or changed data
never return stale arrays. Files are written to a temp file and renamed into place, so a
killed run or two runs at once never leave a half-written cache behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from utils.atomic import save_npz_atomic
from utils.download import sha256_of

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the preprocessing code changes its output


def cache_key(settings, records, folder: Path, extra: dict) -> str:
    fingerprint = {str(r): [(folder / f"{r}.hea").stat().st_size, (folder / f"{r}.dat").stat().st_size,
                            sha256_of(folder / f"{r}.atr")] for r in sorted(records)}
    payload = {"version": CACHE_VERSION, "settings": asdict(settings),
               "records": sorted(int(r) for r in records), "extra": extra,
               "files": fingerprint}
    blob = json.dumps(payload, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def load(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:  # unreadable: rebuild rather than fail the run
        log.warning("ignoring unreadable MIT-BIH cache %s (%s); rebuilding it", path, e)
        return None


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    save_npz_atomic(arrays, path)
