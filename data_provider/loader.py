"""Batch iteration for the trainer.

In-memory ``ArrayDataset``s are batched by indexing whole tensors (optionally already on
the GPU), which removes the per-sample Python and collate overhead a DataLoader adds for
small models. Other datasets, or ``num_workers > 0``, use a regular DataLoader. Either
way the shuffle order of epoch e depends only on (seed, e), so a resumed run sees the same
batches as an uninterrupted one, and evaluation never drops the last partial batch.
``SplitLoaders`` gives one run's loaders over its splits (trainer settings, the budget's batch
size, small datasets kept on the GPU); ``GroupBatches`` keeps groups of samples (COMET's
trials) whole in a batch. Memory-mapped datasets (memmap.py) get the same batches as the
in-memory ones, each read from the files (its rows only) and never moved to the GPU whole.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from utils.seed import seed_worker

from .base import ArrayDataset, collate_batch
from .memmap import MemmapDataset

# Data kept on the GPU when trainer.data_on_device=auto and the arrays are this small.
ON_DEVICE_MAX_BYTES = 2 * 1024**3


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) * 100_003 + int(epoch))
    return g


def batch_indices(order: torch.Tensor, batch_size: int, drop_last: bool, world: int = 1,
                  rank: int = 0) -> list[torch.Tensor]:
    """The index batches of one rank. One process: ``order`` cut into batches (the last,
    smaller one kept unless drop_last). ``world`` processes: ``order`` cut into global batches
    of world x batch_size, rank r taking the r-th part of each, so the union of the ranks'
    batches at a step is the one-process batch of world x batch_size; a last, smaller global
    batch is split evenly, wrapping around to the epoch's first samples so every rank has the
    same number of batches of the same size."""
    n = len(order)
    per = batch_size * world
    full, rest = divmod(n, per)
    keep_tail = rest and not (drop_last and n > per)
    if world == 1:
        return [order[b * batch_size:(b + 1) * batch_size] for b in range(full + bool(keep_tail))]
    batches = [order[g * per + rank * batch_size:g * per + (rank + 1) * batch_size]
               for g in range(full)]
    if keep_tail:
        k = -(-rest // world)
        tail = torch.cat([order[full * per:], order[:k * world - rest]])
        batches.append(tail[rank * k:(rank + 1) * k])
    return batches


class ArrayBatches:
    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool, drop_last: bool,
                 generator: torch.Generator | None, device: torch.device | None = None,
                 max_per_class: int | None = None, world: int = 1, rank: int = 0):
        self.arrays = dataset.arrays
        if device is not None:
            self.arrays = {k: v.to(device) for k, v in self.arrays.items()}
        self.n = len(dataset)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.order = self._epoch_order(max_per_class)
        self.n = len(self.order)
        self.batches = batch_indices(self.order, batch_size, drop_last, world, rank)

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
        return len(self.batches)

    def __iter__(self):
        for idx in self.batches:
            if self.arrays and next(iter(self.arrays.values())).is_cuda:
                idx = idx.to(next(iter(self.arrays.values())).device, non_blocking=True)
            yield {k: v[idx] for k, v in self.arrays.items()}


class MappedBatches(ArrayBatches):
    """ArrayBatches' order and batches over a memory-mapped dataset; each batch reads its
    own rows from the files, so an epoch never holds the whole dataset."""

    def __init__(self, dataset: MemmapDataset, batch_size: int, shuffle: bool, drop_last: bool,
                 generator: torch.Generator | None, max_per_class: int | None = None,
                 world: int = 1, rank: int = 0):
        # .arrays of a mapped dataset gives "y" (for max_per_class) without reading the series
        super().__init__(dataset, batch_size, shuffle, drop_last, generator, None,
                         max_per_class, world, rank)
        self.dataset = dataset

    def __iter__(self):
        for idx in self.batches:
            yield self.dataset.__getitems__(idx)


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, seed: int, epoch: int = 0,
                drop_last: bool = False, num_workers: int = 0, device: torch.device | None = None,
                on_device: bool = False, max_per_class: int | None = None, world: int = 1,
                rank: int = 0):
    """The loader of one split; training batches of rank ``rank`` of ``world`` processes
    (``batch_indices``), evaluation batches in order, never dropping a sample."""
    gen = epoch_generator(seed, epoch) if train else None
    world = world if train else 1
    if isinstance(dataset, MemmapDataset) and num_workers == 0:
        return MappedBatches(dataset, batch_size, shuffle=train, drop_last=train and drop_last,
                             generator=gen, max_per_class=max_per_class if train else None,
                             world=world, rank=rank)
    if isinstance(dataset, ArrayDataset) and num_workers == 0:
        return ArrayBatches(dataset, batch_size, shuffle=train, drop_last=train and drop_last,
                            generator=gen, device=device if on_device else None,
                            max_per_class=max_per_class if train else None, world=world, rank=rank)
    if train and max_per_class is not None:
        raise ValueError("trainer.max_per_class needs an in-memory dataset and trainer.num_workers=0")
    common = dict(num_workers=num_workers, worker_init_fn=seed_worker, collate_fn=collate_batch,
                  pin_memory=device is not None and device.type == "cuda", persistent_workers=False)
    if world > 1:        # this rank's share of the epoch's global batches
        order = torch.randperm(len(dataset), generator=gen)
        batches = [b.tolist() for b in batch_indices(order, batch_size, drop_last, world, rank)]
        return DataLoader(dataset, batch_sampler=batches, **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, generator=gen,
                      drop_last=train and drop_last and len(dataset) > batch_size, **common)


def dataset_nbytes(dataset: Dataset) -> int | None:
    """Bytes of an in-memory dataset; None for others (a memory-mapped one is on disk)."""
    if isinstance(dataset, ArrayDataset) and not isinstance(dataset, MemmapDataset):
        return sum(v.element_size() * v.nelement() for v in dataset.arrays.values())
    return None


class GroupBatches:
    """Training batches of whole groups: runs of equal ``groups`` ids (consecutive samples,
    e.g. the windows of one trial) are shuffled as units, then cut into batches. The order
    of epoch e depends only on (seed, e), as the shared loader's, so resume stays exact.
    The batch count equals ArrayBatches' for the same size and drop_last."""

    def __init__(self, dataset: ArrayDataset, groups: torch.Tensor, batch_size: int,
                 generator: torch.Generator, drop_last: bool, world: int = 1, rank: int = 0):
        _, counts = torch.unique_consecutive(groups, return_counts=True)
        runs = torch.split(torch.arange(len(groups)), counts.tolist())
        order = torch.randperm(len(runs), generator=generator)
        self.order = torch.cat([runs[i] for i in order.tolist()])
        self.arrays, self.batch_size = dataset.arrays, batch_size
        self.dataset = dataset
        self.batches = batch_indices(self.order, batch_size, drop_last, world, rank)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        if isinstance(self.dataset, MemmapDataset):       # each batch reads its own rows
            for idx in self.batches:
                yield self.dataset.__getitems__(idx)
            return
        device = next(iter(self.arrays.values())).device
        for idx in self.batches:
            idx = idx.to(device)
            yield {k: v[idx] for k, v in self.arrays.items()}


class SplitLoaders:
    """The loaders of one run over ``splits``: training batches of ``batch_size`` (the run's
    budget) shuffled per (seed, epoch), evaluation batches of trainer.eval_batch_size in
    order, never dropping a sample; in-memory datasets kept on the GPU when
    trainer.data_on_device says so (auto: when under 2 GiB); with ``groups`` (a group id per
    training sample) training batches hold whole groups."""

    def __init__(self, splits: dict, trainer, batch_size: int, seed: int, device: torch.device,
                 groups: torch.Tensor | None = None, world: int = 1, rank: int = 0):
        self.splits, self.trainer, self.batch_size = splits, trainer, int(batch_size)
        self.seed, self.device, self.groups = int(seed), device, groups
        self.world, self.rank = world, rank          # training batches: this rank's share
        self._on_device: dict[str, ArrayDataset] = {}

    def has(self, split: str) -> bool:
        ds = self.splits.get(split)
        return ds is not None and len(ds) > 0

    def dataset(self, split: str):
        ds = self.splits[split]
        if self._keep_on_device(ds):
            if split not in self._on_device:
                self._on_device[split] = ArrayDataset(
                    **{k: v.to(self.device) for k, v in ds.arrays.items()})
            return self._on_device[split]
        return ds

    def _keep_on_device(self, ds) -> bool:
        # Hydra gives true/false from the command line as a bool, auto as a string
        mode = str(self.trainer.data_on_device).lower()
        workers = int(self.trainer.get("num_workers", 0) or 0)
        if self.device.type != "cuda" or not isinstance(ds, ArrayDataset) or mode == "false" \
                or workers > 0:           # worker processes batch CPU tensors (then pinned)
            return False
        if isinstance(ds, MemmapDataset):  # mapped to stay out of memory: batches go one by one
            return False
        return mode == "true" or (dataset_nbytes(ds) or 0) <= ON_DEVICE_MAX_BYTES

    def __call__(self, split: str, train: bool, epoch: int = 0):
        t = self.trainer
        if train and split == "train" and self.groups is not None:
            return GroupBatches(self.dataset(split), self.groups, self.batch_size,
                                epoch_generator(self.seed, epoch), bool(t.drop_last),
                                self.world, self.rank)
        return self.plain(split, train, epoch)

    def plain(self, split: str, train: bool, epoch: int = 0, batch_size: int | None = None):
        """The shuffled (train) or ordered loader of a split, groups left aside."""
        t = self.trainer
        bs = batch_size or (self.batch_size if train else int(t.eval_batch_size))
        return make_loader(self.dataset(split), batch_size=bs, train=train, seed=self.seed,
                           epoch=epoch, drop_last=t.drop_last, num_workers=t.num_workers,
                           device=self.device,
                           max_per_class=t.get("max_per_class") if train else None,
                           world=self.world, rank=self.rank)
