"""Atomic checkpoint files: written to a temporary file in the same folder, flushed,
then renamed over the target, so a crash or kill never leaves a truncated best.pt/last.pt."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def _atomic_file(path: str | os.PathLike, mode: str):
    """Yield a temporary file next to ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj, path: str | os.PathLike) -> None:
    with _atomic_file(path, "wb") as f:
        torch.save(obj, f)


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    with _atomic_file(path, "w") as f:
        f.write(text)


def checkpoint_file(value, key: str, source: str) -> Path:
    """The checkpoint a config key names (``key``=``value``), checked before any work;
    ``source`` says which run writes it (e.g. "a task=pretrain run")."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist; give the best.pt (or last.pt) "
                                f"of {source}")
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; give the path of a run's "
                                f"checkpoints/best.pt or checkpoints/last.pt")
    # weights_only: a checkpoint is data, never code to run.
    return torch.load(path, map_location=map_location, weights_only=True)
