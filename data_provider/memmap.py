"""Datasets over memory-mapped arrays, for data larger than memory.

A ``MemmapDataset`` serves samples that are rows of .npy files opened with
``numpy.load(mmap_mode="r")``, beside small per-sample arrays kept in memory (labels, ids,
features). A batch reads only its own rows, in file order, into one new array; the rest of
the file stays on disk (the kernel's page cache may keep it, but can drop it at any time).
Splits and the pretraining set are index views (``rows``) into the same files, never copies.

It is an ``ArrayDataset``, so code that reads ``.arrays`` keeps working: an in-memory array
as it is, a mapped one read in full (a copy, logged) when asked for by name. The loaders
(loader.py) and the pretraining set (pretraining.py) read rows only.

DataLoader worker processes (``trainer.num_workers>0``) map the files themselves: a
``MappedFile`` pickles as its path and is opened anew in every process that reads it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import ArrayDataset

log = logging.getLogger(__name__)

# bytes read at once when a whole mapped array is scanned (the pretraining set's NaN check)
SCAN_BYTES = 16 * 1024**2


class MappedFile:
    """A .npy file mapped read-only; opened on first use, once per process."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._array: np.ndarray | None = None
        self._pid: int | None = None

    @property
    def array(self) -> np.ndarray:
        # a forked worker inherits the parent's map; it maps the file itself instead
        if self._array is None or self._pid != os.getpid():
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            self._pid = os.getpid()
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def __getstate__(self) -> dict:
        return {"path": self.path}          # the path, never the data

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"MappedFile({self.path!r})"


@dataclass(frozen=True)
class Mapped:
    """A per-sample array of a MemmapDataset stored in ``file``: sample i is file row
    ``rows[i]``. ``channel_axis`` appends the channel dimension that series stored as
    [N, T] lack ([T] -> [T, 1]), as the in-memory datasets do."""
    file: MappedFile
    channel_axis: bool = False


def read_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` as a new in-memory array, each needed row read once and in file
    order (a shuffled batch would otherwise seek back and forth)."""
    if len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1])):
        return np.asarray(array[rows])
    unique, inverse = np.unique(rows, return_inverse=True)
    return np.asarray(array[unique])[inverse]


def _as_tensor(value) -> torch.Tensor:
    return value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))


class MemmapDataset(ArrayDataset):
    """Samples whose ``Mapped`` columns are rows ``rows`` of memory-mapped files and whose
    other columns are in-memory arrays (one entry per sample). Batches are dicts of tensors
    in the order of ``columns``, like ArrayDataset's."""

    def __init__(self, columns: dict, rows):
        # ArrayDataset.__init__ is skipped on purpose: it would turn every column into one
        # in-memory tensor
        if not columns:
            raise ValueError("MemmapDataset needs at least one column")
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.columns = {k: v if isinstance(v, Mapped) else _as_tensor(v) for k, v in columns.items()}
        wrong = {k: len(v) for k, v in self.columns.items()
                 if not isinstance(v, Mapped) and len(v) != len(self.rows)}
        if wrong:
            raise ValueError(f"columns must have one entry per sample ({len(self.rows)}), got {wrong}")
        self._n = len(self.rows)

    @property
    def arrays(self) -> "MappedArrays":
        return MappedArrays(self)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = range(self._n)[i]                 # negative positions count from the end
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        pos = np.asarray(indices.cpu() if torch.is_tensor(indices) else indices, dtype=np.int64)
        pos = pos.reshape(-1)
        idx = torch.from_numpy(pos)
        return {k: torch.from_numpy(self._read(k, pos)) if isinstance(v, Mapped) else v[idx]
                for k, v in self.columns.items()}

    def _read(self, key: str, pos: np.ndarray) -> np.ndarray:
        """Column ``key`` of the samples at positions ``pos``, read from its file."""
        col = self.columns[key]
        data = read_rows(col.file.array, self.rows[pos])
        return data.reshape(*data.shape, 1) if col.channel_axis else data

    def read(self, key: str) -> np.ndarray:
        """Column ``key`` of every sample as one in-memory array (a copy of mapped data)."""
        col = self.columns[key]
        if not isinstance(col, Mapped):
            return col.numpy()
        return self._read(key, np.arange(self._n))

    def sample_shape(self, key: str) -> tuple[int, ...]:
        """Shape of one sample of column ``key``, without reading mapped data."""
        col = self.columns[key]
        if not isinstance(col, Mapped):
            return tuple(col.shape[1:])
        shape = col.file.shape[1:]
        return (*shape, 1) if col.channel_axis else shape


class SeriesView(MemmapDataset):
    """The series "x" of mapped files as the pretraining set serves them: float32 and, with
    ``section`` and ``bounds`` (starts, stops along time), sample i is section
    ``section[i]`` of file row ``rows[i]``, padded with NaN to the first section's width
    (TS2Vec's sections of long series, as ``split_long_series`` cuts them)."""

    def __init__(self, columns: dict, rows, section=None, bounds=None):
        super().__init__(columns, rows)
        self.section = None if section is None else np.asarray(section, dtype=np.int64)
        self.bounds = bounds

    def _read(self, key: str, pos: np.ndarray) -> np.ndarray:
        data = super()._read(key, pos)
        if key != "x":
            return data
        data = data.astype(np.float32, copy=False)
        return data if self.section is None else self._cut(data, self.section[pos])

    def _cut(self, data: np.ndarray, section: np.ndarray) -> np.ndarray:
        starts, stops = self.bounds
        out = np.full((len(data), stops[0] - starts[0], *data.shape[2:]), np.nan, dtype=np.float32)
        for s in np.unique(section):
            sel = section == s
            out[sel, :stops[s] - starts[s]] = data[sel, starts[s]:stops[s]]
        return out

    def sample_shape(self, key: str) -> tuple[int, ...]:
        shape = super().sample_shape(key)
        if key != "x" or self.section is None:
            return shape
        return (int(self.bounds[1][0] - self.bounds[0][0]), *shape[1:])


def observed(ds: MemmapDataset, key: str = "x") -> np.ndarray:
    """True for every sample of ``key`` with a value that is not NaN. The column is read in
    chunks of about SCAN_BYTES, so the scan never holds more than one chunk in memory."""
    per_sample = max(1, int(np.prod(ds.sample_shape(key))) * 4)
    chunk = max(1, SCAN_BYTES // per_sample)
    out = np.empty(len(ds), dtype=bool)
    for start in range(0, len(ds), chunk):
        pos = np.arange(start, min(start + chunk, len(ds)))
        x = ds._read(key, pos)
        out[pos] = ~np.isnan(x.reshape(len(pos), -1)).all(axis=1)
    return out


class MappedArrays(MutableMapping):
    """``.arrays`` of a MemmapDataset: in-memory columns as they are; a mapped column read in
    full (a copy) when asked for by name. Membership and key listing read nothing."""

    def __init__(self, dataset: MemmapDataset):
        self.dataset = dataset

    def __getitem__(self, key: str) -> torch.Tensor:
        col = self.dataset.columns[key]
        if not isinstance(col, Mapped):
            return col
        log.info("reading the whole memory-mapped '%s' (%d samples) into memory", key, len(self.dataset))
        return torch.from_numpy(self.dataset.read(key))

    def __setitem__(self, key: str, value) -> None:
        if len(value) != len(self.dataset):
            raise ValueError(f"'{key}' needs one entry per sample ({len(self.dataset)}), got {len(value)}")
        self.dataset.columns[key] = _as_tensor(value)

    def __delitem__(self, key: str) -> None:
        del self.dataset.columns[key]

    def __contains__(self, key) -> bool:
        return key in self.dataset.columns

    def __iter__(self):
        return iter(list(self.dataset.columns))

    def __len__(self) -> int:
        return len(self.dataset.columns)
