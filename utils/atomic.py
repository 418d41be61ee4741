"""Atomic file writes: the content goes to a temporary file in the same folder, is flushed to
disk, then renamed over the target, so a crash or a kill never leaves a truncated file (a
checkpoint, metrics.json, a preprocessing cache) and a concurrent reader never sees half of
one."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", permissions: int = 0o644):
    """Yield a temporary file next to ``path``; on success fsync and rename it over ``path``
    with ``permissions`` (mkstemp makes it owner-only; results and caches are for reading)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj, path: str | os.PathLike) -> None:
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def save_npz_atomic(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Uncompressed .npz (loads in a fraction of a second)."""
    with atomic_file(path, "wb") as f:
        np.savez(f, **arrays)
