"""Batch iteration for the trainer.

In-memory ``ArrayDataset``s are batched by indexing whole tensors (optionally already on
the GPU), which removes the per-sample Python and collate overhead a DataLoader adds for
small models. Other datasets, or ``num_workers > 0``, use a regular DataLoader. Either
way the shuffle order of epoch e depends only on (seed, e), so a resumed run sees the same
batches as an uninterrupted one, and evaluation never drops the last partial batch.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .base import ArrayDataset, collate_batch
from utils.seed import seed_worker


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) * 100_003 + int(epoch))
    return g


class ArrayBatches:
    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool, drop_last: bool,
                 generator: torch.Generator | None, device: torch.device | None = None,
                 max_per_class: int | None = None):
        self.arrays = dataset.arrays
        if device is not None:
            self.arrays = {k: v.to(device) for k, v in self.arrays.items()}
        self.n = len(dataset)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.order = self._epoch_order(max_per_class)
        self.n = len(self.order)
        self.drop_last = drop_last and self.n > batch_size

    def _epoch_order(self, max_per_class: int | None) -> torch.Tensor:
        """Sample order of this epoch. With ``max_per_class``, every class contributes at
        most that many samples, drawn anew each epoch (undersampling a majority class, such
        as normal beats, without discarding any of its samples for good). A negative label
        marks an unlabelled sample (the semi-supervised pretraining set's -1), not a class:
        those are all kept, every epoch."""
        if not self.shuffle:
            return torch.arange(self.n)
        order = torch.randperm(self.n, generator=self.generator)
        if max_per_class is None or "y" not in self.arrays:
            return order
        y = self.arrays["y"].cpu()[order]
        keep = y < 0                                  # unlabelled: never capped
        for c in torch.unique(y[~keep]):
            members = torch.nonzero(y == c).flatten()
            keep[members[:max_per_class]] = True
        kept = order[keep]
        # shuffle again: the majority class's kept samples sit early in `order`
        return kept[torch.randperm(len(kept), generator=self.generator)]

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self):
        order = self.order
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.arrays and next(iter(self.arrays.values())).is_cuda:
                idx = idx.to(next(iter(self.arrays.values())).device, non_blocking=True)
            yield {k: v[idx] for k, v in self.arrays.items()}


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, seed: int, epoch: int = 0,
                drop_last: bool = False, num_workers: int = 0, device: torch.device | None = None,
                on_device: bool = False, max_per_class: int | None = None):
    gen = epoch_generator(seed, epoch) if train else None
    if isinstance(dataset, ArrayDataset) and num_workers == 0:
        return ArrayBatches(dataset, batch_size, shuffle=train, drop_last=train and drop_last,
                            generator=gen, device=device if on_device else None,
                            max_per_class=max_per_class if train else None)
    if train and max_per_class is not None:
        raise ValueError("trainer.max_per_class needs an in-memory dataset and trainer.num_workers=0")
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, generator=gen,
                      drop_last=train and drop_last and len(dataset) > batch_size,
                      num_workers=num_workers, worker_init_fn=seed_worker,
                      collate_fn=collate_batch,
                      pin_memory=device is not None and device.type == "cuda",
                      persistent_workers=False)


def dataset_nbytes(dataset: Dataset) -> int | None:
    if isinstance(dataset, ArrayDataset):
        return sum(v.element_size() * v.nelement() for v in dataset.arrays.values())
    return None
