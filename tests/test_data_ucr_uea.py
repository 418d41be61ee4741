"""UCR/UEA archive loaders (.ts/.tsv/.txt) and the TF-C fine-tuning sets, on the real files.

Expected sizes and class counts are the ones documented in each dataset's SOURCE.txt.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import data_cfg
from torch.utils.data import DataLoader

from data_provider import ucr_uea, tfc_data
from data_provider.base import collate_batch
from data_provider.ts_readers import TsFormatError, read_ts
from data_provider.pretraining import pretraining_data

REPO = Path(__file__).resolve().parents[1]


def make_cfg(family, name, data_dir, cache_dir=None, seed=0, **data):
    base = data_cfg(family)
    cfg = OmegaConf.create({"data": base, "seed": seed,
                            "paths": {"data_dir": str(data_dir),
                                      "cache_dir": str(cache_dir) if cache_dir else None}})
    cfg.data.name = name
    for k, v in data.items():
        cfg.data[k] = v
    OmegaConf.set_struct(cfg, True)      # a family never reads a key it was not given (the task)
    return cfg


def build(family, name, data_dir, **kw):
    module = tfc_data if family == "tfc" else ucr_uea
    return module.build(make_cfg(family, name, data_dir, **kw))


def arr(ds, key):
    return ds.arrays[key].numpy()


def train_in_file_order(bundle, key):
    """TRAIN rows (train + val) put back in the file's order via the "index" field."""
    parts = [bundle.splits[s] for s in ("train", "val") if s in bundle.splits]
    idx = np.concatenate([arr(p, "index") for p in parts])
    vals = np.concatenate([arr(p, key) for p in parts])
    return vals[np.argsort(idx)]


# name, family, n_train, n_test, seq_len, channels, TEST class counts (SOURCE.txt)
SIZES = [
    ("GunPoint", "ucr", 50, 150, 150, 1, [76, 74]),
    ("ItalyPowerDemand", "ucr", 67, 1029, 24, 1, [513, 516]),
    ("ArrowHead", "ucr", 36, 175, 251, 1, [69, 53, 53]),
    ("Coffee", "ucr", 28, 28, 286, 1, [15, 13]),
    ("ECG200", "ucr", 100, 100, 96, 1, [36, 64]),
    ("BasicMotions", "uea", 40, 40, 100, 6, [10, 10, 10, 10]),
    ("JapaneseVowels", "uea", 270, 370, 29, 12, [31, 35, 88, 44, 29, 24, 40, 50, 29]),
    ("Epilepsy", "uea", 137, 138, 206, 3, [34, 37, 37, 30]),
    ("AtrialFibrillation", "uea", 15, 15, 640, 2, [5, 5, 5]),
]


@pytest.mark.parametrize("name,family,n_train,n_test,seq_len,channels,test_counts", SIZES)
def test_sizes_match_source(data_dir, name, family, n_train, n_test, seq_len, channels, test_counts):
    b = build(family, name, data_dir)
    tr, va, te = b.splits["train"], b.splits["val"], b.splits["test"]
    assert len(tr) + len(va) == n_train and len(te) == n_test
    for ds in (tr, va, te):
        x = ds.arrays["x"]
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (seq_len, channels)
        assert ds.arrays["y"].dtype == torch.int64 and ds.arrays["mask"].dtype == torch.bool
        assert torch.isfinite(x).all()
    m = b.meta
    assert (m["in_channels"], m["seq_len"], m["num_classes"]) == (channels, seq_len, len(test_counts))
    assert m["has_val"] and m["has_test"] and len(m["class_names"]) == len(test_counts)
    assert np.bincount(arr(te, "y"), minlength=len(test_counts)).tolist() == test_counts
    if name != "JapaneseVowels":  # equal length, complete: mask is all True
        assert all(ds.arrays["mask"].all() for ds in (tr, va, te))


def test_test_loader_keeps_every_sample(data_dir):
    b = build("ucr", "ItalyPowerDemand", data_dir)
    loader = DataLoader(b.splits["test"], batch_size=100, shuffle=False, collate_fn=collate_batch)
    idx = torch.cat([batch["index"] for batch in loader])
    assert len(idx) == 1029 and sorted(idx.tolist()) == list(range(1029))


def test_japanese_vowels_unequal_lengths_and_masks(data_dir):
    b = build("uea", "JapaneseVowels", data_dir, normalize="none")
    lengths = np.concatenate([arr(b.splits[s], "mask").sum(1) for s in ("train", "val", "test")])
    assert lengths.min() == 7 and lengths.max() == 29
    assert train_in_file_order(b, "mask").sum(1).max() == 26  # TRAIN alone: 7..26
    for s in ("train", "val", "test"):
        x, mask = arr(b.splits[s], "x"), arr(b.splits[s], "mask")
        assert (x[~mask] == 0).all()
        # the mask is a prefix: observed steps first, then padding
        assert (np.diff(mask.astype(int), axis=1) <= 0).all()
    x0 = train_in_file_order(b, "x")[0]
    # first values of the file's first case, channels 0 and 1 (read off the .ts file)
    assert x0[0, 0] == pytest.approx(1.860936) and x0[1, 0] == pytest.approx(1.891651)
    assert x0[0, 1] == pytest.approx(-0.207383)
    assert train_in_file_order(b, "mask")[0].sum() == 20


@pytest.mark.parametrize("name,sep,ext", [("ECG200", "\t", "tsv"), ("Coffee", r"\s+", "txt")])
def test_values_equal_an_independent_parse(data_dir, name, sep, ext):
    b = build("ucr", name, data_dir)
    for split, x in (("TRAIN", train_in_file_order(b, "x")), ("TEST", arr(b.splits["test"], "x"))):
        ref = pd.read_csv(data_dir / "UCR" / name / f"{name}_{split}.{ext}", sep=sep,
                          header=None).to_numpy(np.float64)
        np.testing.assert_allclose(x[..., 0], ref[:, 1:], rtol=1e-6, atol=1e-7)


def test_label_mapping(data_dir):
    b = build("ucr", "ECG200", data_dir)
    assert b.meta["class_names"] == ["-1", "1"]
    assert np.bincount(train_in_file_order(b, "y")).tolist() == [31, 69]  # -1:31, 1:69
    bm = build("uea", "BasicMotions", data_dir)
    assert bm.meta["class_names"] == ["Badminton", "Running", "Standing", "Walking"]
    coffee = build("ucr", "Coffee", data_dir)  # labels written as 0.0000000e+00 / 1.0000000e+00
    assert coffee.meta["class_names"] == ["0", "1"]


def test_encode_labels_rules():
    ytr, yte, names = ucr_uea.encode_labels(["10", "9", "2", "1.0000000e+00"], ["1", "10"])
    assert names == ["1", "2", "9", "10"]  # numeric order, not string order
    assert ytr.tolist() == [3, 2, 1, 0] and yte.tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"TEST labels \['c'\] never occur in TRAIN"):
        ucr_uea.encode_labels(["a", "b"], ["a", "c"])


def test_stratified_validation(data_dir):
    b = build("uea", "JapaneseVowels", data_dir, seed=3)
    tr, va = arr(b.splits["train"], "index"), arr(b.splits["val"], "index")
    assert not set(tr) & set(va) and sorted(np.concatenate([tr, va])) == list(range(270))
    # 30 per speaker in TRAIN -> 6 per speaker in validation, 24 in training
    assert np.bincount(arr(b.splits["val"], "y")).tolist() == [6] * 9
    assert np.bincount(arr(b.splits["train"], "y")).tolist() == [24] * 9
    again = build("uea", "JapaneseVowels", data_dir, seed=3)
    other = build("uea", "JapaneseVowels", data_dir, seed=4)
    assert np.array_equal(arr(again.splits["val"], "index"), va)
    assert not np.array_equal(arr(other.splits["val"], "index"), va)
    # ECG200: 31 / 69 -> round(6.2)=6 and round(13.8)=14 validation samples
    e = build("ucr", "ECG200", data_dir)
    assert np.bincount(arr(e.splits["val"], "y")).tolist() == [6, 14]


def test_stratified_split_small_classes():
    y = np.array([0] + [1] * 10 + [2] * 2)
    tr, va = ucr_uea.stratified_split(y, 0.2, seed=0)
    assert np.bincount(y[va], minlength=3).tolist() == [0, 2, 0]  # round(0.4)=0 for class 2
    assert set(y[tr]) == {0, 1, 2}  # every class keeps a training sample
    tr, va = ucr_uea.stratified_split(np.array([0, 1, 2]), 0.5, seed=0)
    assert len(va) == 0 and len(tr) == 3  # singletons never leave training


def test_no_validation(data_dir):
    b = build("ucr", "GunPoint", data_dir, val_fraction=0)
    assert "val" not in b.splits and b.meta["has_val"] is False and len(b.splits["train"]) == 50


def test_train_channel_zscore_uses_train_statistics_only(data_dir):
    raw = build("uea", "BasicMotions", data_dir, normalize="none")
    b = build("uea", "BasicMotions", data_dir)  # default for UEA: train_channel_zscore
    assert b.meta["normalize"] == "train_channel_zscore"
    x_fit = arr(raw.splits["train"], "x").reshape(-1, 6).astype(np.float64)
    mean, std = x_fit.mean(0), x_fit.std(0)
    np.testing.assert_allclose(b.meta["channel_mean"], mean, rtol=1e-5, atol=1e-6)
    for s in ("train", "val", "test"):
        expected = (arr(raw.splits[s], "x") - mean) / std
        np.testing.assert_allclose(arr(b.splits[s], "x"), expected, rtol=1e-4, atol=1e-5)
    xt = arr(b.splits["train"], "x").reshape(-1, 6)
    np.testing.assert_allclose(xt.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(xt.std(0), 1, atol=1e-4)
    assert np.abs(arr(b.splits["test"], "x").reshape(-1, 6).mean(0)).max() > 1e-3


def test_zscore_ignores_padding(data_dir):
    b = build("uea", "JapaneseVowels", data_dir)
    x, mask = arr(b.splits["train"], "x"), arr(b.splits["train"], "mask")
    assert (x[~mask] == 0).all()
    obs = x[mask]  # [observed steps, channels]
    np.testing.assert_allclose(obs.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(obs.std(0), 1, atol=1e-4)
    s = build("ucr", "GunPoint", data_dir, normalize="series_zscore")
    xs = arr(s.splits["test"], "x")[..., 0]
    np.testing.assert_allclose(xs.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(xs.std(1), 1, atol=1e-4)


def test_ts2vec_scaling_follows_the_official_loaders(data_dir):
    # UCR: datasets the archive z-normalised stay as they are
    plain, t = build("ucr", "GunPoint", data_dir), build("ucr", "GunPoint", data_dir, normalize="ts2vec")
    assert t.meta["normalize_applied"] == "none"
    for s in ("train", "val", "test"):
        assert np.array_equal(arr(t.splits[s], "x"), arr(plain.splits[s], "x"))
    # ... the not-normalised ones get one mean/std over all TRAIN values
    assert ucr_uea.ts2vec_scaling("UCR", "Chinatown") == "train_global_zscore"
    assert ucr_uea.ts2vec_scaling("UEA", "BasicMotions") == "train_channel_zscore"
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(6, 10, 2)) * np.array([1.0, 5.0])
    mask = np.ones((6, 10), bool)
    mask[0, 7:] = False                                    # a shorter series, zero-padded
    x[0, 7:] = 0
    out, stats = ucr_uea.normalize(x, mask, "train_global_zscore", fit_idx=np.arange(4))
    fit = x[:4][mask[:4]]                                  # observed TRAIN values, all channels
    assert stats["global_mean"] == pytest.approx(fit.mean()) and stats["global_std"] == pytest.approx(fit.std())
    np.testing.assert_allclose(out[mask], (x[mask] - fit.mean()) / fit.std(), rtol=1e-5)
    assert (out[0, 7:] == 0).all()
    # UEA: a per-channel scaler fit on the whole TRAIN file (train + val)
    b = build("uea", "BasicMotions", data_dir, normalize="ts2vec")
    assert b.meta["normalize_applied"] == "train_channel_zscore"
    obs = train_in_file_order(b, "x").reshape(-1, 6)           # equal lengths: no padding
    np.testing.assert_allclose(obs.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(obs.std(0), 1, atol=1e-4)


def test_pretraining_keeps_the_labelled_splits_for_the_protocol(data_dir):
    family = build("ucr", "GunPoint", data_dir)
    b = pretraining_data(family, ["train", "val"], None)
    for s in ("train", "val", "test"):
        assert b.splits[f"downstream_{s}"] is family.splits[s]
    assert "y" in b.splits["downstream_train"].arrays and "y" not in b.splits["train"].arrays
    assert len(b.splits["train"]) == len(family.splits["train"]) + len(family.splits["val"])


def test_missing_dataset_error(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        build("ucr", "GunPoint", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "UCR" / "GunPoint") in msg
    assert "timeseriesclassification.com" in msg and "aeon-toolkit/GunPoint.zip" in msg
    assert "data.download=true" in msg
    with pytest.raises(FileNotFoundError, match="Did you mean: GunPoint"):
        build("ucr", "GunPointt", tmp_path)
    with pytest.raises(ValueError, match="not a dataset name"):
        build("ucr", "../GunPoint", tmp_path)


def test_cache_gives_the_same_arrays(data_dir, cache_dir):
    a = build("uea", "Epilepsy", data_dir, cache_dir=cache_dir)
    assert list((cache_dir / "ucr_uea").glob("Epilepsy_*.npz"))
    b = build("uea", "Epilepsy", data_dir, cache_dir=cache_dir)
    for s in ("train", "val", "test"):
        for k in ("x", "y", "mask"):
            assert torch.equal(a.splits[s].arrays[k], b.splits[s].arrays[k])


def test_ts_parser_missing_values_and_ragged_channels(tmp_path):
    p = tmp_path / "Toy_TRAIN.ts"
    p.write_text("# a comment\n@problemname Toy\n@timestamps false\n@missing true\n"
                 "@univariate false\n@dimensions 2\n@equallength false\n@classlabel true a b\n"
                 "@data\n1,2,?:4,5,6:a\n\n7,8:9,10:b\n")
    raw = read_ts(p)
    assert raw.labels == ["a", "b"] and raw.n_channels == 2 and raw.lengths.tolist() == [3, 2]
    assert np.isnan(raw.series[0][2, 0]) and raw.series[0][2, 1] == 6
    p.write_text("@problemName Toy\n@classLabel true a\n@data\n1,2:b\n")
    with pytest.raises(TsFormatError, match="label 'b' is not among"):
        read_ts(p)
    p.write_text("@problemName Toy\n@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n")
    with pytest.raises(TsFormatError, match="timeStamps"):
        read_ts(p)


def test_unknown_dataset_missing_values_and_warning(tmp_path):
    folder = tmp_path / "UCR" / "Toy"
    folder.mkdir(parents=True)
    (folder / "Toy_TRAIN.tsv").write_text("2\t1\t2\t3\n2\t3\t2\t1\n1\t0\tNaN\t0\n1\t5\t5\tNaN\n")
    (folder / "Toy_TEST.tsv").write_text("1\t1\t1\t1\n")
    with pytest.warns(UserWarning, match="not in the catalog"):
        b = build("ucr", "Toy", tmp_path, val_fraction=0)
    x, mask = arr(b.splits["train"], "x"), arr(b.splits["train"], "mask")
    assert mask.tolist() == [[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 0]]
    assert x[2, 1, 0] == 0 and x[3, 2, 0] == 0
    assert b.meta["class_names"] == ["1", "2"] and arr(b.splits["train"], "y").tolist() == [1, 1, 0, 0]
    assert b.meta["has_missing"] and not b.meta["has_val"]
    assert b.meta["variable_length"]  # the trailing NaN of the last row is padding


def test_tfc_epilepsy(data_dir):
    b = build("tfc", "Epilepsy", data_dir)
    assert set(b.splits) == {"train", "val"} and b.meta["has_test"] is False
    assert len(b.splits["train"]) == 60 and len(b.splits["val"]) == 20
    assert tuple(b.splits["train"].arrays["x"].shape) == (60, 178, 1)
    assert (b.meta["in_channels"], b.meta["seq_len"], b.meta["num_classes"]) == (1, 178, 2)
    assert np.bincount(arr(b.splits["train"], "y")).tolist() == [30, 30]
    assert np.bincount(arr(b.splits["val"], "y")).tolist() == [10, 10]
    raw = torch.load(data_dir / "TFC" / "Epilepsy" / "val.pt", weights_only=True)
    np.testing.assert_allclose(arr(b.splits["val"], "x")[:, :, 0], raw["samples"][:, 0].numpy(),
                               rtol=1e-6)
    p = pretraining_data(b, ["train"], None)
    assert p.splits["downstream_val"] is b.splits["val"] and "downstream_test" not in p.splits


def test_tfc_missing_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="TFC-pretraining") as e:
        build("tfc", "Epilepsy", tmp_path)
    assert str(tmp_path / "TFC" / "Epilepsy" / "train.pt") in str(e.value)


def test_bad_settings_fail_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unknown data.normalize 'zscore'.*series_zscore"):
        build("ucr", "GunPoint", tmp_path, normalize="zscore")
    with pytest.raises(ValueError, match="val_fraction must be in"):
        build("ucr", "GunPoint", tmp_path, val_fraction=1.0)
