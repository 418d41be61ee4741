"""Paths built from config values, kept inside the data directory.

A config value names a file or folder relative to ``paths.data_dir``. It never reaches a
file outside it: not by ``..``, not as an absolute path, not through a symlink that points
out of the data directory. The check resolves the joined path (following symlinks) and
compares it with the resolved data directory, so what is checked is what is read.
"""
from __future__ import annotations

import os
from pathlib import Path

Part = str | tuple[str, object]  # a fixed folder name, or (config key, its value)


def inside_data_dir(data_dir: str | os.PathLike, *parts: Part) -> Path:
    """The resolved path ``data_dir/part/...``; each (key, value) part is checked in turn, so
    a refusal names the config key whose value leaves the data directory."""
    root = Path(data_dir).resolve()
    path = root
    for part in parts:
        key, value = part if isinstance(part, tuple) else (None, part)
        text = str(value)
        path = (path / text).resolve()
        if key is not None:
            _refuse_outside(root, path, key, text)
    return path


def _refuse_outside(root: Path, path: Path, key: str, value: str) -> None:
    # An absolute value is refused even when it points into the data directory: config
    # paths are relative to paths.data_dir, so one config works on every machine.
    if os.path.isabs(value) or not path.is_relative_to(root):
        raise ValueError(
            f"{key}='{value}' leads outside the data directory {root} (to {path}). Paths in "
            f"the config are relative to paths.data_dir (the DATA_DIR environment variable "
            f"overrides it) and must stay inside it: give {key} relative to that folder, "
            f"without '..', not absolute, and not through a symlink that points out of it.")
