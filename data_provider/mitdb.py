"""`data=ecg`: MIT-BIH Arrhythmia Database heartbeats, AAMI EC57 classes, inter-patient split.

Beats are cut around every annotated beat on lead MLII and mapped to N, S, V, F, Q. The split
is the standard one of de Chazal et al. 2004: train on DS1, test on DS2 (paced records 102,
104, 107, 217 excluded); validation is a few whole DS1 records held out, so model selection
never sees a training patient. Preprocessing (mitdb_signal.py) is cached on disk
(mitdb_cache.py, keyed by the files' sha256); missing files are reported or downloaded, and
local files are checked against the official sha256 unless data.verify_files=false
(mitdb_files.py). With ``data.memory_map=true`` the beats (and windows) stay on disk as
memory-mapped .npy files of the cache, the splits being views of their rows (memmap.py).
With ``data.dechazal_features=true`` the per-beat "features" are de Chazal et al.'s 2004 set
(mitdb_features.py) instead of the six RR features.

With ``data.ssl_unit=window``, "unlabelled_train"/"unlabelled_val" also hold long
non-overlapping windows of the DS1 train/val records, which task=pretrain pretrains on instead
of the beats (data_provider/pretraining.py); ``data.test_windows=true`` cuts the DS2 records
the same way into "unlabelled_test" (task=impute scores its reconstructions on them).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from utils.paths import inside_data_dir

from . import mitdb_cache, mitdb_features
from .base import ArrayDataset, DataBundle
from .memmap import Mapped, MappedFile, MemmapDataset
from .mitdb_files import ensure_records, record_digests, verify_records
from .mitdb_signal import (CLASS_NAMES, NORMALIZED_RR_NAMES, RR_FEATURE_NAMES, SignalSettings,
                           normalize_rr, process_record)

log = logging.getLogger(__name__)

DS1 = [101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208, 209,
       215, 220, 223, 230]
DS2 = [100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222, 228,
       231, 232, 233, 234]
PACED = (102, 104, 107, 217)
# Default held-out DS1 records: together they hold N, S, V and F beats (~16 % of DS1 beats).
DEFAULT_VAL = [114, 118, 124, 223]
# Records 201 and 202 come from the same patient. The standard split puts 201 in DS1 and 202 in
# DS2 -- its known patient overlap -- which we keep so results compare with the literature.
SAME_PATIENT = {202: 201}
SSL_UNITS = ("beat", "window")


def patient_of(record: int) -> int:
    return SAME_PATIENT.get(int(record), int(record))


def _get(d, key, default):
    value = OmegaConf.select(d, key, default=default) if OmegaConf.is_config(d) else d.get(key, default)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def settings_from_cfg(d) -> SignalSettings:
    return SignalSettings(
        lead=str(_get(d, "lead", "MLII")),
        window_before_s=float(_get(d, "window_before_s", 0.25)),
        window_after_s=float(_get(d, "window_after_s", 0.45)),
        resample_hz=None if _get(d, "resample_hz", None) is None else float(_get(d, "resample_hz", None)),
        filter=str(_get(d, "filter", "median_baseline")),
        bandpass_hz=tuple(float(v) for v in _get(d, "bandpass_hz", [0.5, 40.0])),
        filter_order=int(_get(d, "filter_order", 3)),
        median_ms=tuple(float(v) for v in _get(d, "median_ms", [200.0, 600.0])),
        median_lowpass_hz=None if _get(d, "median_lowpass_hz", 35.0) is None
        else float(_get(d, "median_lowpass_hz", 35.0)),
        normalize=str(_get(d, "normalize", "record_zscore")),
    )


def split_records(d) -> dict[str, list[int]]:
    """Train/val/test record lists from the config, checked for patient leaks."""
    ds1 = [int(r) for r in _get(d, "ds1_records", DS1)]
    ds2 = [int(r) for r in _get(d, "ds2_records", DS2)]
    val = [int(r) for r in _get(d, "val_records", DEFAULT_VAL)]
    if set(ds1) & set(ds2):
        raise ValueError(f"records {sorted(set(ds1) & set(ds2))} are in both data.ds1_records and "
                         "data.ds2_records; a record may be in one only")
    if not set(val) <= set(ds1):
        raise ValueError(f"data.val_records {sorted(set(val) - set(ds1))} are not in data.ds1_records; "
                         "validation records are held out from DS1")
    train = [r for r in ds1 if r not in val]
    if not train or not ds2:
        raise ValueError("data.ds1_records (minus data.val_records) and data.ds2_records must not be empty")
    pats = {name: {patient_of(r) for r in recs} for name, recs in
            (("train", train), ("val", val), ("test", ds2))}
    for other in ("train", "test"):
        if pats["val"] & pats[other]:
            raise ValueError(f"validation records share patients {sorted(pats['val'] & pats[other])} with "
                             f"{other}; pick other data.val_records (201 and 202 are one patient)")
    return {"train": train, "val": val, "test": ds2}


def shared_patients(splits: dict[str, list[int]]) -> list[int]:
    return sorted({patient_of(r) for r in splits["train"]} & {patient_of(r) for r in splits["test"]})


def ready_records(cfg, recs: dict[str, list[int]]) -> tuple[Path, list[int], dict[str, str]]:
    """(folder, records, sha256 of their files) of every record of the split: missing files
    fetched when data.download allows, every file checked against the official sha256."""
    d = cfg.data
    folder = inside_data_dir(str(cfg.paths.data_dir), ("data.subdir", _get(d, "subdir", "mitdb")))
    all_records = sorted(set(recs["train"]) | set(recs["val"]) | set(recs["test"]))
    ensure_records(folder, all_records, download=bool(_get(d, "download", False)),
                   source_url=str(_get(d, "source_url", "https://physionet.org/files/mitdb/1.0.0/")))
    digests = record_digests(folder, all_records)
    verify_records(folder, digests, verify=bool(_get(d, "verify_files", True)))
    return folder, all_records, digests


def _preprocess(folder: Path, records, settings, window_seconds, window_records,
                progress: bool = True) -> dict:
    parts, windows = [], []
    fs_out = None
    for r in tqdm(records, desc="MIT-BIH preprocessing", unit="record", leave=False,
                  disable=not progress):
        beats, win, fs_out = process_record(folder / str(r), settings,
                                            window_seconds if r in window_records else None)
        parts.append((r, beats))
        if win is not None:
            windows.append((r, win))
    out = {
        "x": np.concatenate([b.x for _, b in parts]),
        "y": np.concatenate([b.y for _, b in parts]),
        "rr": np.concatenate([b.rr for _, b in parts]),
        "sample": np.concatenate([b.sample for _, b in parts]),
        "symbol": np.concatenate([b.symbol for _, b in parts]),
        "record": np.concatenate([np.full(len(b.y), r, dtype=np.int64) for r, b in parts]),
        "fs": np.asarray(fs_out, dtype=np.float64),
    }
    if window_seconds is not None:
        out["wx"] = np.concatenate([w for _, w in windows])
        out["wrecord"] = np.concatenate([np.full(len(w), r, dtype=np.int64) for r, w in windows])
    return out


def load_arrays(cfg, folder: Path, records, settings, window_seconds=None, window_records=(),
                digests: dict[str, str] | None = None, memory_map: bool = False) -> dict:
    """Preprocessed arrays for `records`, from the cache when its key matches. ``digests``
    (file name -> sha256, from record_digests) spares hashing the files a second time.
    ``memory_map``: the series "x" / "wx" as MappedFiles of the cache's .npy folder."""
    records = sorted(int(r) for r in records)
    window_records = sorted(int(r) for r in window_records) if window_seconds is not None else []
    cache = mitdb_cache.folder(OmegaConf.select(cfg, "paths.cache_dir", default=None))
    if cache is None:
        if memory_map:
            log.warning("data.memory_map=true keeps its .npy files in the cache directory, and "
                        "there is none (paths.cache_dir / CACHE_DIR): the arrays stay in memory")
        return _preprocess_logged(cfg, folder, records, settings, window_seconds, window_records)
    digests = digests if digests is not None else record_digests(folder, records)
    extra = {"ssl_window_seconds": window_seconds, "window_records": window_records}
    key = mitdb_cache.cache_key(settings, records, digests, extra)
    if memory_map:
        return _mapped_arrays(cfg, cache, key, folder, records, settings, window_seconds,
                              window_records)
    path = cache / f"{key}.npz"
    cached = mitdb_cache.load(path)
    if cached is not None:
        return cached
    arrays = _preprocess_logged(cfg, folder, records, settings, window_seconds, window_records)
    mitdb_cache.save(path, arrays)
    return arrays


def _mapped_arrays(cfg, cache: Path, key: str, folder: Path, records, settings, window_seconds,
                   window_records) -> dict:
    """The .npy folder of ``key``, built on first use from the .npz cache of the same key
    or by preprocessing; the arrays stay in memory only when the folder cannot be written."""
    windows = window_seconds is not None
    mapped = mitdb_cache.load_mapped(cache / key, windows)
    if mapped is not None:
        return mapped
    arrays = mitdb_cache.load(cache / f"{key}.npz")
    if arrays is None:
        arrays = _preprocess_logged(cfg, folder, records, settings, window_seconds, window_records)
    mitdb_cache.save_mapped(cache / key, arrays)
    return mitdb_cache.load_mapped(cache / key, windows) or arrays


def _preprocess_logged(cfg, folder: Path, records, settings, window_seconds, window_records) -> dict:
    t0 = time.time()
    progress = bool(OmegaConf.select(cfg, "trainer.progress", default=True))
    arrays = _preprocess(folder, records, settings, window_seconds, set(window_records), progress)
    log.info("MIT-BIH: preprocessed %d records in %.1f s", len(records), time.time() - t0)
    return arrays


def _series(a: dict, key: str, idx: np.ndarray):
    """Rows ``idx`` of the series ``key`` [N, T] with a channel axis: a view of a mapped file
    (no copy), or an in-memory copy."""
    if isinstance(a[key], MappedFile):
        return Mapped(a[key], channel_axis=True)
    return a[key][idx][:, :, None]


def _dataset(items: dict, idx: np.ndarray) -> ArrayDataset:
    """In-memory arrays, or rows ``idx`` of the mapped files when a series is mapped."""
    if any(isinstance(v, Mapped) for v in items.values()):
        return MemmapDataset(items, idx)
    return ArrayDataset(**items)


def _beat_dataset(a: dict, records, features: np.ndarray | None) -> ArrayDataset:
    idx = np.flatnonzero(np.isin(a["record"], records))
    items = {"x": _series(a, "x", idx), "y": a["y"][idx]}
    if features is not None:
        items["features"] = features[idx]
    items["patient_id"] = np.array([patient_of(r) for r in a["record"][idx]], dtype=np.int64)
    items["record"] = np.asarray(a["record"][idx], dtype=np.int64)   # per-record figures
    items["index"] = np.arange(len(idx), dtype=np.int64)
    return _dataset(items, idx)


def _window_dataset(a: dict, records) -> ArrayDataset:
    idx = np.flatnonzero(np.isin(a["wrecord"], records))
    return _dataset({"x": _series(a, "wx", idx),
                     "patient_id": np.array([patient_of(r) for r in a["wrecord"][idx]], dtype=np.int64),
                     "index": np.arange(len(idx), dtype=np.int64)}, idx)


def _class_counts(ds: ArrayDataset) -> dict[str, int]:
    counts = np.bincount(ds.arrays["y"].numpy(), minlength=len(CLASS_NAMES))
    return {c: int(n) for c, n in zip(CLASS_NAMES, counts)}


def _rr_standardiser(train: ArrayDataset):
    """Clip bounds and z-score statistics of the beat features, from the training beats only.
    Annotation gaps make a few RR intervals last tens of seconds; clipping at the training
    0.5/99.5 percentiles keeps such outliers from dominating the classifier's input."""
    f = train.arrays["features"].numpy().astype(np.float64)
    lo, hi = np.percentile(f, [0.5, 99.5], axis=0)
    clipped = np.clip(f, lo, hi)
    return lo, hi, clipped.mean(axis=0), clipped.std(axis=0) + 1e-6


def _apply_rr(ds: ArrayDataset, stats) -> None:
    if stats is None or "features" not in ds.arrays:
        return
    lo, hi, mu, sd = stats
    f = np.clip(ds.arrays["features"].numpy().astype(np.float64), lo, hi)
    ds.arrays["features"] = torch.from_numpy(((f - mu) / sd).astype(np.float32))


def _dechazal_features(cfg, folder: Path, records, settings, digests, a: dict) -> np.ndarray:
    """de Chazal's features of every beat, in the order of the beat arrays ``a``."""
    f = mitdb_features.load_features(cfg, folder, records, settings, digests)
    if not (np.array_equal(f["record"], a["record"]) and np.array_equal(f["sample"], a["sample"])):
        raise RuntimeError("the de Chazal features and the beats disagree on which beats a record "
                           "holds; delete the cache directory (paths.cache_dir) and run again")
    return f["features"]


def build(cfg) -> DataBundle:
    d = cfg.data
    settings = settings_from_cfg(d)
    recs = split_records(d)
    rr = bool(_get(d, "rr_features", True))
    ssl_unit = str(_get(d, "ssl_unit", "beat"))
    if ssl_unit not in SSL_UNITS:
        raise ValueError(f"data.ssl_unit={ssl_unit!r} is not known; choose one of {list(SSL_UNITS)}")
    window_seconds = float(_get(d, "ssl_window_seconds", 10.0)) if ssl_unit == "window" else None
    window_splits = ["train", "val"] + (["test"] if bool(_get(d, "test_windows", False)) else [])

    folder, all_records, digests = ready_records(cfg, recs)
    a = load_arrays(cfg, folder, all_records, settings, window_seconds,
                    window_records=[r for name in window_splits for r in recs[name]], digests=digests,
                    memory_map=bool(_get(d, "memory_map", False)))

    features, feature_names = None, []
    if rr:
        mode = str(_get(d, "rr_normalize", "none"))
        features = normalize_rr(np.asarray(a["rr"]), np.asarray(a["record"]), mode,
                                float(_get(d, "rr_causal_seconds", 300.0)))
        feature_names = list(RR_FEATURE_NAMES if mode == "none" else NORMALIZED_RR_NAMES)
    if bool(_get(d, "dechazal_features", False)):
        features = _dechazal_features(cfg, folder, all_records, settings, digests, a)
        feature_names = list(mitdb_features.DECHAZAL_FEATURE_NAMES)
    labelled = {name: _beat_dataset(a, r, features) for name, r in recs.items()}
    standardize = features is not None and bool(_get(d, "rr_standardize", True))
    rr_stats = _rr_standardiser(labelled["train"]) if standardize else None
    for ds in labelled.values():
        _apply_rr(ds, rr_stats)
    beat_len = int(a["x"].shape[1])
    meta = {
        "in_channels": 1, "seq_len": beat_len, "num_classes": len(CLASS_NAMES),
        "class_names": list(CLASS_NAMES), "extra_features": len(feature_names),
        "feature_names": feature_names, "fs": float(a["fs"]),
        "lead": settings.lead, "records": {k: list(v) for k, v in recs.items()},
        "shared_patients": shared_patients(recs),
        "class_counts": {name: _class_counts(ds) for name, ds in labelled.items()},
    }
    splits = dict(labelled)
    if ssl_unit == "window":
        for name in window_splits:
            splits[f"unlabelled_{name}"] = _window_dataset(a, recs[name])
        meta["unlabelled_seq_len"] = int(a["wx"].shape[1])
    return DataBundle(splits=splits, meta=meta)
