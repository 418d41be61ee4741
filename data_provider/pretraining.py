"""The pretraining set of task=pretrain, shaped from what a data family returns.

A family returns its labelled splits "train", "val", "test" and, where its unlabelled inputs
differ from the labelled samples, "unlabelled_train" / "unlabelled_val" (MIT-BIH with
``data.ssl_unit=window``: long windows instead of beats). ``pretraining_data`` turns that
into the bundle the pretraining loop and the downstream protocols read:

- "train": the union of ``task.pretrain_splits`` (labels never read; unobserved entries
  NaN; series longer than 2 x ``max_train_length`` cut into sections as TS2Vec does; all-NaN
  series dropped), with "index" (the row: memory banks) and "patient_id" / "trial_id" when
  every pretraining split has them (a cut series keeps its ids in every section);
- "val": the held-out loss, when "val" is not pretrained on;
- "downstream_train/_val/_test": the labelled splits, for the protocols.

Memory-mapped splits (memmap.py, e.g. MIT-BIH with ``data.memory_map=true``) give a
pretraining set that is a view of their files' rows (``mapped_pretraining_set``): the same
samples, sections, ids and "index" as the in-memory set, with no copy of the series.

A semi-supervised method (``uses_labels``) pretrains on the labelled train split instead,
with "y" kept for the stratified, seeded ``task.label_fraction`` share (the samples the
protocol is also given) and -1 for the rest. Forecasting data follows TS2Vec's forecasting
setting instead (``forecast_pretraining_data``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from utils.protocols.label_fraction import stratified_subset

from .base import ArrayDataset, DataBundle
from .memmap import Mapped, MemmapDataset, SeriesView, observed

log = logging.getLogger(__name__)

# per-sample keys the pretraining set keeps when every pretraining split has them (COMET's
# patient and trial levels); "index" (the row in the pretraining set) is always added
ID_KEYS = ("patient_id", "trial_id")
LABELLED = ("train", "val", "test")


def arrays_of(ds) -> dict:
    """Every sample of a dataset as one dict of arrays."""
    return ds.arrays if isinstance(ds, ArrayDataset) else ds.__getitems__(list(range(len(ds))))


def series_with_nan(ds) -> np.ndarray:
    """x [N, T, C] of a dataset with entries its ``mask`` marks unobserved set to NaN."""
    if isinstance(ds, MemmapDataset) and "mask" not in ds.columns:
        return ds.read("x").astype(np.float32, copy=False)    # a new array: every row, once
    arrays = arrays_of(ds)
    x = torch.as_tensor(arrays["x"]).float().cpu().numpy().copy()
    if "mask" in arrays:
        m = torch.as_tensor(arrays["mask"]).cpu().numpy().astype(bool)
        if m.ndim == 2:
            m = np.repeat(m[..., None], x.shape[-1], axis=-1)
        x[~m] = np.nan
    return x


def labels_of(ds) -> np.ndarray:
    arrays = arrays_of(ds)
    if "y" not in arrays:
        raise ValueError("the downstream split has no labels 'y'; the classification protocols "
                         "need a labelled dataset")
    return torch.as_tensor(arrays["y"]).cpu().numpy().astype(np.int64).reshape(-1)


def shared_keys(arrays: list[dict], keys) -> dict[str, np.ndarray]:
    """{key: the splits' values concatenated} for each of ``keys`` that every split has."""
    return {k: np.concatenate([torch.as_tensor(a[k]).cpu().numpy() for a in arrays])
            for k in keys if all(k in a for a in arrays)}


def split_long_series(x: np.ndarray, max_len: int | None) -> np.ndarray:
    """TS2Vec's preprocessing of training data: series longer than 2 * max_len are cut into
    T // max_len sections (padded with NaN to equal length) that become separate samples."""
    if max_len is None or x.shape[1] // max_len < 2:
        return x
    parts = np.array_split(x, x.shape[1] // max_len, axis=1)
    width = parts[0].shape[1]
    parts = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=np.nan)
             for p in parts]
    out = np.concatenate(parts, axis=0)
    return out[~np.isnan(out).all(axis=(1, 2))]


def pretraining_set(x: np.ndarray, keys: dict[str, np.ndarray], max_len: int | None,
                    drop_empty: bool = True) -> ArrayDataset:
    """ArrayDataset of x [N, T, C] (NaN = unobserved) and its per-sample ``keys``. Series cut
    into sections by ``split_long_series`` (TS2Vec) keep their keys in every section;
    all-NaN series are dropped; "index" is the row in the result (memory banks)."""
    n = len(x)
    sections = x.shape[1] // max_len if max_len else 1
    if sections >= 2:                    # split_long_series stacks section-major
        keep = np.concatenate([~np.isnan(p).all(axis=(1, 2))
                               for p in np.array_split(x, sections, axis=1)])
        x = split_long_series(x, max_len)
        keys = {k: np.tile(v, sections)[keep] for k, v in keys.items()}
    if drop_empty:
        keep = ~np.isnan(x).all(axis=(1, 2))
        x, keys = x[keep], {k: v[keep] for k, v in keys.items()}
    if len(x) != n:
        log.info("pretraining set: %d series -> %d (sections of long series, empty ones dropped)",
                 n, len(x))
    return ArrayDataset(x=x.astype(np.float32), **keys, index=np.arange(len(x), dtype=np.int64))


def mapped_together(datasets) -> bool:
    """Whether the pretraining set of ``datasets`` can be a view: every series "x" a row of
    the same mapped file, and no "mask" to turn into NaN (such data is read into memory)."""
    if not all(isinstance(d, MemmapDataset) for d in datasets):
        return False
    cols = [d.columns.get("x") for d in datasets]
    return (all(isinstance(c, Mapped) for c in cols) and len({c.file.path for c in cols}) == 1
            and len({c.channel_axis for c in cols}) == 1
            and not any("mask" in d.columns for d in datasets))


def mapped_pretraining_set(datasets: list, keys: dict[str, np.ndarray], max_len: int | None,
                           drop_empty: bool = True) -> SeriesView:
    """``pretraining_set`` of the series of ``datasets`` (see mapped_together), as a view of
    the file rows: the same samples in the same order (sections section-major, all-NaN ones
    dropped, found by one chunked pass over the file), keys and "index"."""
    x = datasets[0].columns["x"]
    rows = np.concatenate([d.rows for d in datasets])
    n, length = len(rows), datasets[0].sample_shape("x")[0]
    sections = length // max_len if max_len else 1
    section = bounds = None
    if sections >= 2:                    # section-major, as split_long_series stacks them
        parts = np.array_split(np.arange(length), sections)
        bounds = (np.array([p[0] for p in parts]), np.array([p[-1] + 1 for p in parts]))
        section = np.repeat(np.arange(sections), n)
        rows, keys = np.tile(rows, sections), {k: np.tile(v, sections) for k, v in keys.items()}
    keep = np.ones(len(rows), dtype=bool)
    if sections >= 2 or drop_empty:
        keep = observed(SeriesView({"x": x}, rows, section, bounds))
    if keep.sum() != n:
        log.info("pretraining set: %d series -> %d (sections of long series, empty ones dropped)",
                 n, int(keep.sum()))
    columns = {"x": x, **{k: v[keep] for k, v in keys.items()},
               "index": np.arange(int(keep.sum()), dtype=np.int64)}
    return SeriesView(columns, rows[keep], None if section is None else section[keep], bounds)


def _pretraining_set_of(datasets: list, keys: dict[str, np.ndarray], max_len: int | None,
                        drop_empty: bool = True) -> ArrayDataset:
    """pretraining_set of the datasets' series: a view when they are mapped, else in memory."""
    if mapped_together(datasets):
        return mapped_pretraining_set(datasets, keys, max_len, drop_empty)
    parts = [series_with_nan(d) for d in datasets]
    x = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return pretraining_set(x, keys, max_len, drop_empty)


def x_shape(ds) -> tuple[int, ...]:
    """(samples, *sample shape) of a dataset's "x", without reading mapped series."""
    if isinstance(ds, MemmapDataset):
        return (len(ds), *ds.sample_shape("x"))
    return tuple(ds.arrays["x"].shape)


def semi_supervised_labels(y, fraction: float, seed: int = 0) -> np.ndarray:
    """Labels with all but a stratified ``fraction`` (per class, seeded) replaced by -1."""
    y = np.asarray(y).astype(np.int64)
    out = np.full_like(y, -1)
    keep = stratified_subset(y, fraction, seed)
    out[keep] = y[keep]
    return out


def _with_pretraining_meta(meta: dict, train: ArrayDataset) -> dict:
    shape = x_shape(train)
    return {**meta, "n_pretrain": shape[0], "pretrain_values": int(np.prod(shape))}


def pretraining_data(bundle: DataBundle, pretrain_splits, max_train_length: int | None,
                     data_name: str = "") -> DataBundle:
    """The unlabelled pretraining bundle (module docstring) of a family's bundle."""
    splits = bundle.splits
    downstream = {f"downstream_{s}": splits[s] for s in LABELLED if s in splits}
    wanted = list(pretrain_splits)
    source = {s: splits.get(f"unlabelled_{s}", splits.get(s)) for s in ("train", "val")}
    if source["train"] is None and "train" in wanted:
        raise ValueError(f"data={data_name} has no 'train' split to pretrain on")
    names = [s for s in wanted if source.get(s) is not None]
    if not names:
        raise ValueError(f"task.pretrain_splits={wanted} names no split of data={data_name}; "
                         "use [train] or [train, val]")
    if mapped_together([source[s] for s in names]):      # one file: the same sample shape
        ids = shared_keys([arrays_of(source[s]) for s in names], ID_KEYS)
        train = mapped_pretraining_set([source[s] for s in names], ids, max_train_length)
    else:
        parts = [series_with_nan(source[s]) for s in names]
        if len({p.shape[1:] for p in parts}) > 1:
            log.warning("pretrain splits %s differ in shape %s; pretraining on 'train' only",
                        wanted, [p.shape[1:] for p in parts])
            parts, names = parts[:1], names[:1]
        ids = shared_keys([arrays_of(source[s]) for s in names], ID_KEYS)
        train = pretraining_set(np.concatenate(parts), ids, max_train_length)
    new = {"train": train}
    if source["val"] is not None and "val" not in wanted:        # a held-out loss curve
        val_ids = shared_keys([arrays_of(source["val"])], ID_KEYS)
        new["val"] = _pretraining_set_of([source["val"]], val_ids, None, drop_empty=False)
    shape = x_shape(train)
    log.info("pretraining on %d series (%s) of %d steps x %d channels; batch keys %s",
             shape[0], "+".join(names), shape[1], shape[2], sorted(train.arrays))
    meta = dict(bundle.meta)
    if "unlabelled_seq_len" in meta:        # e.g. MIT-BIH windows instead of beats
        meta["downstream_seq_len"], meta["seq_len"] = meta["seq_len"], meta["unlabelled_seq_len"]
    return DataBundle(splits={**new, **downstream}, meta=_with_pretraining_meta(meta, train))


def semi_supervised_data(bundle: DataBundle, label_fraction: float, seed: int,
                         max_train_length: int | None, model_name: str = "",
                         data_name: str = "") -> DataBundle:
    """Pretraining on the labelled train split with all but ``label_fraction`` of its labels
    hidden (-1); the val split, hidden the same way, gives the held-out loss."""
    splits = bundle.splits
    new = {}
    for split, max_len in (("train", max_train_length), ("val", None)):
        ds = splits.get(split)
        if ds is None or len(ds) == 0:
            if split == "train":
                raise ValueError(f"model={model_name} is semi-supervised and pretrains on labelled "
                                 f"data, but data={data_name} has no labelled train split")
            continue
        ids = shared_keys([arrays_of(ds)], ID_KEYS)
        ids["y"] = semi_supervised_labels(labels_of(ds), label_fraction, seed)
        new[split] = _pretraining_set_of([ds], ids, max_len, drop_empty=split == "train")
    y = new["train"].arrays["y"]
    log.info("semi-supervised pretraining on the labelled train split: %d series, %d labelled "
             "(label_fraction %.3g), the rest -1", len(new["train"]), int((y >= 0).sum()),
             label_fraction)
    downstream = {f"downstream_{s}": splits[s] for s in LABELLED if s in splits}
    return DataBundle(splits={**new, **downstream},
                      meta=_with_pretraining_meta(bundle.meta, new["train"]))


@dataclass
class ForecastSeries:
    """TS2Vec's forecasting setting: one scaled series [1, T, covariates + channels] with the
    time features as covariate channels in front, and its train/val/test rows."""
    data: np.ndarray
    train: slice
    val: slice
    test: slice
    covariates: int
    targets: list[int]


def forecast_pretraining_data(bundle: DataBundle, max_train_length: int | None
                              ) -> tuple[DataBundle, ForecastSeries]:
    """Pretraining on the training rows of the whole scaled series (TS2Vec's forecasting
    setting), and the series the ridge protocol evaluates on."""
    sp, meta = bundle.splits, bundle.meta
    lag = int(meta["seq_len"])            # val/test windows start seq_len rows early
    rows = np.concatenate([sp["train"].x, sp["val"].x[lag:], sp["test"].x[lag:]])
    marks = np.concatenate([sp["train"].mark, sp["val"].mark[lag:], sp["test"].mark[lag:]])
    series = np.concatenate([marks, rows], axis=1)[None].astype(np.float32)
    n_tr, n_va = len(sp["train"].x), len(sp["val"].x) - lag
    cov = int(marks.shape[1])
    train = split_long_series(series[:, :n_tr], max_train_length)
    forecast = ForecastSeries(series, slice(0, n_tr), slice(n_tr, n_tr + n_va),
                              slice(n_tr + n_va, None), cov, [cov + i for i in meta["out_index"]])
    log.info("forecast pretraining on %d x %d steps x %d channels (%d time covariates)",
             *train.shape, cov)
    out = DataBundle(splits={"train": ArrayDataset(x=train)},
                     meta={**meta, "in_channels": int(series.shape[-1]),
                           "n_pretrain": len(train), "pretrain_values": int(train.size)})
    return out, forecast
