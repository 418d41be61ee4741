"""data.memory_map: the .npy cache folder, memory-mapped datasets and their batches (in
process and in DataLoader workers), the pretraining set as a view of the file rows, and runs
whose metrics equal the in-memory ones. A few MIT-BIH records, so the file runs fast."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import data_cfg, read_metrics, require_files, run_experiment

from data_provider import memmap, mitdb, npz_cache
from data_provider.base import collate_batch
from data_provider.loader import MappedBatches, make_loader
from data_provider.memmap import Mapped, MappedFile, MemmapDataset, SeriesView
from data_provider.pretraining import (mapped_pretraining_set, pretraining_data, pretraining_set,
                                       semi_supervised_data, series_with_nan)

RECORDS = dict(ds1_records=[101, 118], val_records=[118], ds2_records=[100])
FILES = [f"mitdb/{r}.{ext}" for r in (100, 101, 118) for ext in ("hea", "dat", "atr")]
RUN = ["data=ecg", "trainer.progress=false", "trainer.num_threads=1",
       "data.ds1_records=[101,118]", "data.val_records=[118]", "data.ds2_records=[100]"]
CLASSIFY = ["task=classification", "model=resnet1d", "model.widths=[8,8]", "trainer.max_epochs=1"]
PRETRAIN = ["model=ts2vec", "model.depth=2", "model.hidden_dims=8", "model.output_dims=16",
            "trainer.max_steps=3", "task.protocol=knn"]


def ecg_cfg(data_dir, cache_dir, memory_map: bool, **data):
    cfg = OmegaConf.create({"data": data_cfg("ecg"), "seed": 0,
                            "paths": {"data_dir": str(data_dir), "cache_dir": str(cache_dir)}})
    for key, value in {**RECORDS, "memory_map": memory_map, **data}.items():
        cfg.data[key] = value
    OmegaConf.set_struct(cfg, True)
    return cfg


@pytest.fixture(scope="module")
def bundles(data_dir, cache_dir):
    """(in-memory, memory-mapped) MIT-BIH bundles of the same records."""
    require_files(data_dir, *FILES)
    return (mitdb.build(ecg_cfg(data_dir, cache_dir, False)),
            mitdb.build(ecg_cfg(data_dir, cache_dir, True)))


def assert_same_batch(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k].nan_to_num(-7.0), b[k].nan_to_num(-7.0)), k


def without_times(metrics):
    """metrics.json less its wall times."""
    if isinstance(metrics, dict):
        return {k: without_times(v) for k, v in metrics.items() if "seconds" not in k}
    return metrics


def mapped_series(tmp_path, x: np.ndarray, **columns) -> MemmapDataset:
    np.save(tmp_path / "x.npy", x)
    return MemmapDataset({"x": Mapped(MappedFile(tmp_path / "x.npy")), **columns}, np.arange(len(x)))


# ---------------------------------------------------------------- the .npy cache folder
def test_npy_folder_appears_whole_and_reopens_mapped(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(4, 3), "y": np.arange(4), "fs": np.asarray(180.0)}
    npz_cache.save_npy_folder(tmp_path / "key", arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["key"]            # no temporary left
    got = npz_cache.load_npy_folder(tmp_path / "key", ("x", "y", "fs"), ("x",))
    assert isinstance(got["x"], MappedFile) and isinstance(got["x"].array, np.memmap)
    assert not isinstance(got["y"], np.memmap)                          # small arrays are read
    np.testing.assert_array_equal(got["x"].array, arrays["x"])
    assert float(got["fs"]) == 180.0
    # a second writer of the same key keeps the finished folder
    npz_cache.save_npy_folder(tmp_path / "key", {"x": np.zeros((1, 1))})
    np.testing.assert_array_equal(np.load(tmp_path / "key" / "x.npy"), arrays["x"])
    assert npz_cache.load_npy_folder(tmp_path / "key", ("x", "w"), ("x",)) is None    # incomplete
    assert not (tmp_path / "key").exists()                              # removed, to be rebuilt


def test_damaged_npy_folder_is_rebuilt(tmp_path):
    npz_cache.save_npy_folder(tmp_path / "key", {"x": np.ones((100, 50), dtype=np.float32)})
    data = (tmp_path / "key" / "x.npy").read_bytes()
    (tmp_path / "key" / "x.npy").write_bytes(data[:len(data) // 2])    # truncated
    assert npz_cache.load_npy_folder(tmp_path / "key", ("x",), ("x",)) is None
    assert not (tmp_path / "key").exists()


# ---------------------------------------------------------------- datasets and batches
def test_mapped_splits_are_views_serving_the_in_memory_samples(bundles):
    memory, mapped = bundles
    assert memory.meta == mapped.meta
    files = {ds.columns["x"].file.path for ds in mapped.splits.values()}
    assert len(files) == 1                                      # every split: rows of one file
    for split, ds in mapped.splits.items():
        assert isinstance(ds, MemmapDataset) and len(ds) == len(memory.splits[split])
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(1))[:257]
        assert_same_batch(memory.splits[split].__getitems__(idx), ds.__getitems__(idx))
        assert_same_batch(memory.splits[split][-1], ds[-1])
        for key in ("y", "features", "patient_id", "index"):   # in memory, standardised alike
            assert torch.equal(memory.splits[split].arrays[key], ds.arrays[key])
        assert torch.equal(memory.splits[split].arrays["x"], ds.arrays["x"])   # read in full


@pytest.mark.parametrize("train,max_per_class,world,rank", [
    (True, None, 1, 0), (True, 300, 1, 0), (True, None, 2, 1), (False, None, 1, 0)])
def test_mapped_batches_equal_the_in_memory_batches(bundles, train, max_per_class, world, rank):
    memory, mapped = bundles
    args = dict(batch_size=100, train=train, seed=3, epoch=2, drop_last=True,
                max_per_class=max_per_class, world=world, rank=rank)
    loader = make_loader(mapped.splits["train"], **args)
    assert isinstance(loader, MappedBatches)
    ours, theirs = list(loader), list(make_loader(memory.splits["train"], **args))
    assert len(ours) == len(theirs) == len(loader) > 1
    for a, b in zip(theirs, ours):
        assert_same_batch(a, b)


def test_pickled_dataset_carries_the_path_not_the_series(bundles):
    ds = bundles[1].splits["train"]
    blob = pickle.dumps(ds)
    series_bytes = len(ds) * int(np.prod(ds.sample_shape("x"))) * 4
    assert len(blob) < series_bytes / 4
    copy = pickle.loads(blob)
    assert copy.columns["x"].file._array is None                 # opens its own map on use
    assert_same_batch(ds.__getitems__([5, 0, 9]), copy.__getitems__([5, 0, 9]))


def test_workers_serve_the_in_memory_batches(bundles):
    memory, mapped = bundles
    for train in (True, False):
        args = dict(batch_size=64, train=train, seed=0, epoch=1, num_workers=2)
        ours = list(make_loader(mapped.splits["train"], **args))
        theirs = list(make_loader(memory.splits["train"], **args))
        assert len(ours) == len(theirs) > 1
        for a, b in zip(theirs, ours):
            assert_same_batch(a, b)


def test_spawned_workers_map_the_file_themselves(bundles):
    # spawn pickles the dataset to each worker (fork would share the parent's map)
    ds = bundles[1].splits["val"]
    loader = torch.utils.data.DataLoader(ds, batch_size=500, num_workers=1,
                                         multiprocessing_context="spawn", collate_fn=collate_batch)
    got = list(loader)
    assert len(got) == -(-len(ds) // 500)
    assert_same_batch(got[-1], ds.__getitems__(list(range(500 * (len(got) - 1), len(ds)))))


# ---------------------------------------------------------------- the pretraining set
@pytest.mark.parametrize("max_len,drop_empty", [(None, True), (None, False), (25, True), (40, False)])
def test_pretraining_view_equals_the_in_memory_set(tmp_path, monkeypatch, max_len, drop_empty):
    monkeypatch.setattr(memmap, "SCAN_BYTES", 2100)           # the NaN scan in chunks of 4 rows
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 126)).astype(np.float32)
    x[3] = np.nan                                       # an empty series
    x[7, :40] = np.nan                                  # an empty first section
    x[11, 60:] = np.nan
    ds = mapped_series(tmp_path, x)
    ds.columns["x"] = Mapped(ds.columns["x"].file, channel_axis=True)
    keys = {"patient_id": np.arange(30) % 4}
    view = mapped_pretraining_set([ds], keys, max_len, drop_empty)
    ref = pretraining_set(x[:, :, None].copy(), keys, max_len, drop_empty)
    assert isinstance(view, SeriesView) and len(view) == len(ref)
    assert view.sample_shape("x") == tuple(ref.arrays["x"].shape[1:])
    assert_same_batch(ref.__getitems__(torch.arange(len(ref))), view.__getitems__(np.arange(len(view))))


@pytest.mark.parametrize("unit,splits", [("beat", ["train", "val"]), ("beat", ["train"]),
                                         ("window", ["train", "val"])])
def test_pretraining_data_is_a_view_of_the_mapped_rows(data_dir, cache_dir, unit, splits):
    require_files(data_dir, *FILES)
    memory, mapped = (pretraining_data(mitdb.build(ecg_cfg(data_dir, cache_dir, mm, ssl_unit=unit)),
                                       splits, 3000) for mm in (False, True))
    assert memory.meta == mapped.meta
    assert set(memory.splits) == set(mapped.splits)
    for name, ds in mapped.splits.items():
        assert isinstance(ds, MemmapDataset), name
        ref = memory.splits[name]
        assert_same_batch(ref.__getitems__(torch.arange(len(ref))), ds.__getitems__(np.arange(len(ds))))
    np.testing.assert_array_equal(series_with_nan(mapped.splits["downstream_test"]),
                                  series_with_nan(memory.splits["downstream_test"]))


def test_semi_supervised_set_is_a_view_with_the_hidden_labels(bundles):
    memory, mapped = (semi_supervised_data(b, 0.1, 0, 3000) for b in bundles)
    assert memory.meta == mapped.meta
    for name in ("train", "val"):
        ds, ref = mapped.splits[name], memory.splits[name]
        assert isinstance(ds, SeriesView)
        assert_same_batch(ref.__getitems__(torch.arange(len(ref))), ds.__getitems__(np.arange(len(ds))))


# ---------------------------------------------------------------- whole runs
def _paths(data_dir, cache_dir):
    def edit(cfg):
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.cache_dir = str(cache_dir)
    return edit


@pytest.mark.parametrize("task", ["classification", "pretrain"])
def test_memory_map_gives_the_in_memory_metrics(data_dir, cache_dir, tmp_path, task):
    require_files(data_dir, *FILES)
    args = RUN + (CLASSIFY if task == "classification" else PRETRAIN)
    for mm in ("false", "true"):
        run_experiment(args + [f"data.memory_map={mm}"], tmp_path / mm, _paths(data_dir, cache_dir))
    memory, mapped = (without_times(read_metrics(tmp_path / mm)) for mm in ("false", "true"))
    assert mapped == memory
    assert memory["test"]["accuracy"] > 0


def test_memory_mapped_run_trains_with_two_workers(data_dir, cache_dir, tmp_path):
    require_files(data_dir, *FILES)
    args = RUN + CLASSIFY + ["trainer.num_workers=2"]
    for mm in ("false", "true"):
        run_experiment(args + [f"data.memory_map={mm}"], tmp_path / mm, _paths(data_dir, cache_dir))
    memory, mapped = (without_times(read_metrics(tmp_path / mm)) for mm in ("false", "true"))
    assert mapped == memory and mapped["steps"] > 0
