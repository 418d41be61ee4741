"""Shared dataset pieces: an in-memory dataset of aligned arrays and the bundle every
data family returns to the experiment."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """Aligned arrays (first dim = samples) served as dicts of tensors.

    ``__getitems__`` lets the DataLoader fetch a whole batch with one fancy-index per
    array instead of N ``__getitem__`` calls and a collate: for the small models and
    short series of this field that per-sample Python overhead would dominate.
    """

    def __init__(self, **arrays: Any):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.arrays = {k: torch.as_tensor(np.asarray(v)) if not torch.is_tensor(v) else v
                       for k, v in arrays.items()}
        lengths = {k: len(v) for k, v in self.arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays must have the same number of samples, got {lengths}")
        self._n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.arrays.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[idx] for k, v in self.arrays.items()}


def collate_batch(samples):
    """Collate for loaders over datasets that may already return whole batches."""
    if isinstance(samples, dict):
        return samples
    return torch.utils.data.default_collate(samples)


@dataclass
class DataBundle:
    """What a data family hands the experiment.

    splits: split name ("train", "val", "test", optionally "unlabelled") -> Dataset whose
            items are dicts with at least "x" [time, channels] float32.
    meta:   data-dependent sizes passed to the model (in_channels, seq_len, num_classes,
            class_names, pred_len, ...) and anything the task needs (scaler, dates, ...).
    """

    splits: dict[str, Dataset]
    meta: dict[str, Any] = field(default_factory=dict)
