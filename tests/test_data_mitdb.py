"""data=ecg (MIT-BIH): AAMI mapping, inter-patient splits, beat cutting, RR features, cache,
config keys, errors and the pretraining splits. A few records each, so the file runs fast."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from omegaconf import OmegaConf

from tests.helpers import data_cfg

from data_provider import mitdb
from data_provider.pretraining import pretraining_data
from data_provider.data_factory import data_provider
from data_provider.mitdb_files import ensure_records
from data_provider.mitdb_signal import SignalSettings, process_record

REPO = Path(__file__).resolve().parents[1]

# AAMI EC57 grouping written out again here (not imported) to check the loader against.
AAMI = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
ORDER = ["N", "S", "V", "F", "Q"]

SMALL = dict(ds1_records=[101, 114, 118], val_records=[118], ds2_records=[100, 103])


def make_cfg(data_dir, cache_dir, **data):
    # struct mode: a data family reading any key it was not given (e.g. the task) fails
    cfg = OmegaConf.create({
        "data": data_cfg("ecg"),
        "paths": {"data_dir": str(data_dir), "cache_dir": str(cache_dir)}, "seed": 0})
    for key, value in {**SMALL, **data}.items():
        cfg.data[key] = value
    OmegaConf.set_struct(cfg, True)
    return cfg


def raw_aami_counts(folder: Path, record: int) -> Counter:
    symbols = wfdb.rdann(str(folder / str(record)), "atr").symbol
    return Counter(c for s in symbols for c, syms in AAMI.items() if s in syms)


@pytest.fixture(scope="module")
def small(data_dir, cache_dir):
    return mitdb.build(make_cfg(data_dir, cache_dir))


def test_record_100_aami_counts_match_raw_annotations(data_dir):
    folder = data_dir / "mitdb"
    ensure_records(folder, [100], download=False, source_url="")     # absent: skip (conftest)
    beats, _, fs = process_record(folder / "100", SignalSettings())
    raw = raw_aami_counts(folder, 100)
    assert len(beats.y) == 2273 == sum(raw.values())           # published beat count of record 100
    got = np.bincount(beats.y, minlength=5)
    assert got.tolist() == [raw[c] for c in ORDER] == [2239, 33, 1, 0, 0]  # 2239 N, 33 A, 1 V
    assert fs == 360.0 and beats.x.shape == (2273, 252) and beats.x.dtype == np.float32


def test_lead_found_by_name_and_window_placement(data_dir):
    ensure_records(data_dir / "mitdb", [114], download=False, source_url="")
    # record 114 stores MLII as its second signal; raw windows must come from that channel
    s = SignalSettings(filter="none", normalize="none")
    beats, _, _ = process_record(data_dir / "mitdb" / "114", s)
    sig = wfdb.rdrecord(str(data_dir / "mitdb" / "114")).p_signal
    assert wfdb.rdheader(str(data_dir / "mitdb" / "114")).sig_name == ["V5", "MLII"]
    i = len(beats.sample) // 2
    r = beats.sample[i]
    np.testing.assert_allclose(beats.x[i], sig[r - 90:r + 162, 1].astype(np.float32))
    assert not np.allclose(beats.x[i], sig[r - 90:r + 162, 0])


def test_splits_disjoint_patients_and_every_test_beat_kept(small, data_dir):
    pats = {k: set(small.splits[k].arrays["patient_id"].tolist()) for k in ("train", "val", "test")}
    assert pats == {"train": {101, 114}, "val": {118}, "test": {100, 103}}
    folder = data_dir / "mitdb"
    want = sum((raw_aami_counts(folder, r) for r in (100, 103)), Counter())
    assert len(small.splits["test"]) == sum(want.values())      # no beat dropped, edges included
    assert small.meta["class_counts"]["test"] == {c: want[c] for c in ORDER}
    item = small.splits["test"][0]
    assert item["x"].shape == (126, 1) and item["x"].dtype.is_floating_point  # 0.7 s at the default 180 Hz
    assert item["x"].dtype == torch.float32 and item["y"].dtype == torch.int64
    assert small.meta["num_classes"] == 5 and small.meta["class_names"] == ORDER
    assert small.splits["test"].arrays["index"].tolist() == list(range(len(small.splits["test"])))


def test_standard_split_only_shares_patient_201_and_val_leak_rejected():
    cfg = OmegaConf.create({"ds1_records": mitdb.DS1, "ds2_records": mitdb.DS2,
                            "val_records": mitdb.DEFAULT_VAL})
    recs = mitdb.split_records(cfg)
    assert len(recs["train"]) + len(recs["val"]) == 22 and len(recs["test"]) == 22
    assert not set(mitdb.PACED) & set(recs["train"] + recs["val"] + recs["test"])
    assert mitdb.shared_patients(recs) == [201]                 # 201 (DS1) and 202 (DS2)
    cfg.val_records = [201, 106]                                # 201's patient is also in DS2
    with pytest.raises(ValueError, match="share patients"):
        mitdb.split_records(cfg)
    cfg.val_records = [100]
    with pytest.raises(ValueError, match="not in data.ds1_records"):
        mitdb.split_records(cfg)


def test_patient_202_mapped_to_201(data_dir, cache_dir):
    b = mitdb.build(make_cfg(data_dir, cache_dir, ds1_records=[101, 118], val_records=[118],
                             ds2_records=[202]))
    assert set(b.splits["test"].arrays["patient_id"].tolist()) == {201}


def test_cache_hit_identical_and_skips_preprocessing(data_dir, cache_dir, small, monkeypatch):
    files = list((cache_dir / "mitdb").glob("*.npz"))
    assert files and not list((cache_dir / "mitdb").glob("*.tmp"))

    def boom(*a, **k):
        raise AssertionError("preprocessing ran although the cache should have been hit")

    monkeypatch.setattr(mitdb, "process_record", boom)
    t0 = time.time()
    again = mitdb.build(make_cfg(data_dir, cache_dir))
    assert time.time() - t0 < 5
    for split in ("train", "val", "test"):
        for key, arr in small.splits[split].arrays.items():
            assert np.array_equal(arr.numpy(), again.splits[split].arrays[key].numpy()), (split, key)
    # a different val choice over the same records reuses the same cache file
    moved = mitdb.build(make_cfg(data_dir, cache_dir, val_records=[114]))
    assert moved.meta["records"]["val"] == [114]


def test_window_filter_normalize_resample_change_output(data_dir, cache_dir, small):
    one = dict(ds1_records=[101, 118], val_records=[118], ds2_records=[100])
    base = mitdb.build(make_cfg(data_dir, cache_dir, **one))
    longer = mitdb.build(make_cfg(data_dir, cache_dir, window_before_s=0.3, **one))
    assert longer.meta["seq_len"] == 54 + 81 and base.meta["seq_len"] == 126
    bp = mitdb.build(make_cfg(data_dir, cache_dir, filter="bandpass", **one))
    raw = mitdb.build(make_cfg(data_dir, cache_dir, filter="none", **one))
    x = [b.splits["test"].arrays["x"].numpy() for b in (base, bp, raw)]
    assert not np.allclose(x[0], x[1]) and not np.allclose(x[1], x[2])
    bz = mitdb.build(make_cfg(data_dir, cache_dir, normalize="beat_zscore", **one))
    xb = bz.splits["test"].arrays["x"].numpy()[..., 0]
    np.testing.assert_allclose(xb.mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(xb.std(1), 1, atol=1e-3)
    rs = mitdb.build(make_cfg(data_dir, cache_dir, resample_hz=180, **one))
    assert rs.meta["fs"] == 180.0 and rs.meta["seq_len"] == 45 + 81
    assert len(rs.splits["test"]) == len(base.splits["test"])
    assert len(list((cache_dir / "mitdb").glob("*.npz"))) >= 6  # one file per setting


def test_bad_values_name_the_key(data_dir, cache_dir):
    with pytest.raises(ValueError, match="data.filter.*median_baseline"):
        mitdb.build(make_cfg(data_dir, cache_dir, filter="wavelet"))
    with pytest.raises(ValueError, match="data.normalize"):
        mitdb.build(make_cfg(data_dir, cache_dir, normalize="minmax"))


def test_missing_folder_error_names_folder_files_source_and_download(tmp_path, cache_dir):
    cfg = make_cfg(tmp_path / "nowhere", cache_dir)
    with pytest.raises(FileNotFoundError) as e:
        mitdb.build(cfg)
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "mitdb") in msg and "100.dat" in msg and "101.atr" in msg
    assert "https://physionet.org/content/mitdb/1.0.0/" in msg and "data.download=true" in msg


def test_rr_features(data_dir, cache_dir):
    raw = mitdb.build(make_cfg(data_dir, cache_dir, rr_standardize=False))
    ds = raw.splits["test"]
    f = ds.arrays["features"].numpy()
    rec = ds.arrays["patient_id"].numpy()
    assert f.shape == (len(ds), 6) and f.dtype == np.float32 and raw.meta["extra_features"] == 6
    same = rec[1:] == rec[:-1]
    np.testing.assert_allclose(f[1:, 0][same], f[:-1, 1][same])      # pre-RR(i) == post-RR(i-1)
    assert 0.2 < np.median(f[:, 0]) < 1.5                              # seconds, a heart rate
    r100 = f[rec == 100]
    # record 100: 2273 beats in 30:05 min -> mean RR about 0.79 s
    assert 0.75 < r100[0, 3] < 0.83 and np.allclose(r100[:, 3], r100[0, 3])
    np.testing.assert_allclose(r100[:, 4], r100[:, 0] / r100[:, 3], rtol=1e-5)
    np.testing.assert_allclose(r100[:, 5], r100[:, 1] / r100[:, 3], rtol=1e-5)
    i = 100  # local average = mean of the 10 RR intervals around beat i (pre of i-4..i, post of i..i+4)
    np.testing.assert_allclose(r100[i, 2], np.mean(np.r_[r100[i - 4:i + 1, 0], r100[i:i + 5, 1]]),
                               rtol=1e-5)


def test_rr_features_standardised_with_training_statistics_only(data_dir, cache_dir, small):
    raw = mitdb.build(make_cfg(data_dir, cache_dir, rr_standardize=False))
    train = raw.splits["train"].arrays["features"].numpy().astype(np.float64)
    lo, hi = np.percentile(train, [0.5, 99.5], axis=0)
    mu, sd = np.clip(train, lo, hi).mean(0), np.clip(train, lo, hi).std(0) + 1e-6
    for split in ("train", "test"):
        expected = (np.clip(raw.splits[split].arrays["features"].numpy(), lo, hi) - mu) / sd
        np.testing.assert_allclose(small.splits[split].arrays["features"].numpy(), expected, rtol=1e-4, atol=1e-4)
    std = small.splits["train"].arrays["features"].numpy()
    np.testing.assert_allclose(std.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(std.std(0), 1, atol=1e-2)


def test_rr_features_off(data_dir, cache_dir):
    b = mitdb.build(make_cfg(data_dir, cache_dir, rr_features=False))
    assert "features" not in b.splits["train"].arrays and b.meta["extra_features"] == 0


def test_data_factory_dispatches_ecg(data_dir, cache_dir):
    b = data_provider(make_cfg(data_dir, cache_dir))
    assert b.meta["in_channels"] == 1 and set(b.splits) == {"train", "val", "test"}


def test_pretrain_beat_and_window_splits(data_dir, cache_dir, small):
    b = pretraining_data(mitdb.build(make_cfg(data_dir, cache_dir)), ["train"], None)
    assert set(b.splits) == {"train", "val", "downstream_train", "downstream_val",
                             "downstream_test"}
    assert "y" not in b.splits["train"].arrays and "y" in b.splits["downstream_train"].arrays
    assert len(b.splits["train"]) == len(small.splits["train"])
    assert len(b.splits["downstream_test"]) == len(small.splits["test"])
    for name, ds in b.splits.items():
        assert "patient_id" in ds.arrays, name
    family = mitdb.build(make_cfg(data_dir, cache_dir, ssl_unit="window", ssl_window_seconds=10.0))
    assert {"unlabelled_train", "unlabelled_val"} <= set(family.splits)
    w = pretraining_data(family, ["train"], None)
    x = w.splits["train"].arrays["x"]
    assert tuple(x.shape) == (2 * (650000 // 3600), 1800, 1) and w.meta["seq_len"] == 1800
    assert w.meta["downstream_seq_len"] == 126
    assert set(w.splits["train"].arrays["patient_id"].tolist()) == {101, 114}
    assert set(w.splits["val"].arrays["patient_id"].tolist()) == {118}
    with pytest.raises(ValueError, match="ssl_unit"):
        mitdb.build(make_cfg(data_dir, cache_dir, ssl_unit="segment"))
