"""Damaged data and unusable caches, on copies of the real files that each test damages.

Caches are keyed by the content of their inputs, so a file damaged in place and later
restored never reads arrays computed from the other version; MIT-BIH files are checked
against the official sha256; every damaged file is refused with a message naming the file,
the line or row, the problem and where to get a clean copy; an unusable cache directory is
reported once and the run goes on without it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import copy_data, data_cfg

from data_provider import forecast_data, mitdb, tfc_data, ucr_uea
from data_provider.mitdb_manifest import MITDB_FILES
from utils.download import DataUnavailable, sha256_of

MITDB = [f"mitdb/{r}.{e}" for r in (100, 101) for e in ("hea", "dat", "atr")]


# ----------------------------------------------------------------------------- helpers
def ecg_cfg(data_dir, cache_dir, **data):
    cfg = OmegaConf.create({"data": data_cfg("ecg"), "seed": 0, "trainer": {"progress": False},
                            "paths": {"data_dir": str(data_dir),
                                      "cache_dir": None if cache_dir is None else str(cache_dir)}})
    cfg.data.update({"ds1_records": [101], "val_records": [], "ds2_records": [100],
                     "download": False, **data})
    return cfg


def archive_cfg(family, name, data_dir, cache_dir=None, **data):
    cfg = OmegaConf.create({"data": data_cfg(family), "seed": 0,
                            "paths": {"data_dir": str(data_dir),
                                      "cache_dir": None if cache_dir is None else str(cache_dir)}})
    cfg.data.update({"name": name, "download": False, **data})
    return cfg


def arrays_of(bundle) -> dict[str, np.ndarray]:
    return {f"{s}/{k}": v.numpy() for s, ds in bundle.splits.items() for k, v in ds.arrays.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def flip(path: Path, start: int, n: int) -> bytes:
    """Damage n bytes of a file in place, keeping its size; returns the original bytes."""
    original = path.read_bytes()
    data = bytearray(original)
    for i in range(start, start + n):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    return original


def edit_line(path: Path, lineno: int, edit) -> None:
    lines = path.read_text().split("\n")
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("\n".join(lines))


def line_of(path: Path, prefix: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().split("\n"), 1) if ln.startswith(prefix))


def refusal(build, cfg) -> str:
    """The message of the ValueError `build(cfg)` raises; absent-data errors do not count."""
    with pytest.raises(ValueError) as e:
        build(cfg)
    assert not isinstance(e.value, DataUnavailable)
    return str(e.value)


def no_parsing(*a, **k):
    raise AssertionError("the data was parsed again although the cache should have been hit")


@pytest.fixture
def ecg_copy(data_dir, tmp_path) -> Path:
    return copy_data(data_dir, tmp_path / "data", *MITDB)


# ----------------------------------------------------------------------------- 1. caches
def test_mitdb_file_not_matching_the_manifest_is_refused(ecg_copy, tmp_path):
    dat = ecg_copy / "mitdb" / "100.dat"
    flip(dat, 900_000, 30)
    msg = refusal(mitdb.build, ecg_cfg(ecg_copy, tmp_path / "cache"))
    assert str(dat) in msg
    assert sha256_of(dat) in msg and MITDB_FILES["100.dat"][1] in msg      # both checksums
    assert "Delete it" in msg and "data.download=true" in msg and "data.verify_files=false" in msg
    assert not list((tmp_path / "cache").rglob("*.npz"))                   # nothing cached


def test_mitdb_cache_keyed_by_content_never_serves_the_other_version(ecg_copy, tmp_path,
                                                                     monkeypatch):
    cache = tmp_path / "cache"
    cfg = ecg_cfg(ecg_copy, cache, verify_files=False)   # use the damaged copy on purpose
    clean = arrays_of(mitdb.build(ecg_cfg(ecg_copy, None)))
    dat = ecg_copy / "mitdb" / "100.dat"
    original = flip(dat, 900_000, 3000)                   # same size, other samples
    damaged = arrays_of(mitdb.build(cfg))
    assert not np.array_equal(damaged["test/x"], clean["test/x"])
    dat.write_bytes(original)                             # restored in place
    assert_same(arrays_of(mitdb.build(cfg)), clean)       # not the damaged file's beats
    flip(dat, 900_000, 3000)
    monkeypatch.setattr(mitdb, "process_record", no_parsing)
    assert_same(arrays_of(mitdb.build(cfg)), damaged)     # each version hits its own entry
    dat.write_bytes(original)
    assert_same(arrays_of(mitdb.build(cfg)), clean)
    assert len(list((cache / "mitdb").glob("*.npz"))) == 2


def test_ucr_cache_keyed_by_content_not_size_or_time(data_dir, tmp_path, monkeypatch):
    copy = copy_data(data_dir, tmp_path / "data", "UCR/GunPoint/GunPoint_TRAIN.ts",
                     "UCR/GunPoint/GunPoint_TEST.ts")
    train = copy / "UCR" / "GunPoint" / "GunPoint_TRAIN.ts"
    cfg = archive_cfg("ucr", "GunPoint", copy, tmp_path / "cache")
    clean = arrays_of(ucr_uea.build(cfg))
    original, stat = train.read_text(), train.stat()
    row = line_of(train, "@data") + 1
    edit_line(train, row, lambda ln: ln.replace("-", "+", 1))   # same size: -0.6 becomes +0.6
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))    # and the same time
    assert train.stat().st_size == stat.st_size
    changed = arrays_of(ucr_uea.build(cfg))
    assert not np.array_equal(changed["train/x"], clean["train/x"]) or \
        not np.array_equal(changed["val/x"], clean["val/x"])
    train.write_text(original)
    monkeypatch.setattr(ucr_uea, "parse_files", no_parsing)
    assert_same(arrays_of(ucr_uea.build(cfg)), clean)           # cache hit, the clean arrays


def _family_builds(family, data_dir, tmp_path, cache):
    """(build, cfg with `cache`, the arrays built without a cache)."""
    if family == "ecg":
        copy = copy_data(data_dir, tmp_path / "data", *MITDB)
        return mitdb.build, ecg_cfg(copy, cache), arrays_of(mitdb.build(ecg_cfg(copy, None)))
    ref = arrays_of(ucr_uea.build(archive_cfg("ucr", "GunPoint", data_dir)))
    return ucr_uea.build, archive_cfg("ucr", "GunPoint", data_dir, cache), ref


def _built_twice_with_one_report(build, cfg, ref, directory, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="data_provider"):
        first, second = arrays_of(build(cfg)), arrays_of(build(cfg))
    assert_same(first, ref)
    assert_same(second, ref)
    reports = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(reports) == 1, reports
    assert str(directory) in reports[0]
    assert "paths.cache_dir" in reports[0] and "CACHE_DIR" in reports[0]


@pytest.mark.parametrize("family", ["ecg", "ucr"])
def test_cache_path_that_is_a_file_is_reported_once_and_skipped(family, data_dir, tmp_path, caplog):
    blocked = tmp_path / "cache_is_a_file"
    blocked.write_text("not a directory")
    build, cfg, ref = _family_builds(family, data_dir, tmp_path, blocked)
    _built_twice_with_one_report(build, cfg, ref, blocked, caplog)


@pytest.mark.parametrize("denied", ["unreadable", "read_only"])
@pytest.mark.parametrize("family", ["ecg", "ucr"])
def test_unreadable_or_unwritable_cache_directory_is_reported_once_and_skipped(
        family, denied, data_dir, tmp_path, caplog, monkeypatch):
    """Permission bits do not stop root (CI runs as root), so the denial is the operating
    system's answer, simulated where the cache asks for it."""
    from data_provider import npz_cache
    cache = tmp_path / "cache"
    sub = cache / ("mitdb" if family == "ecg" else "ucr_uea")
    if denied == "unreadable":
        monkeypatch.setattr(npz_cache.os, "access", lambda path, mode: Path(path) != sub)
    else:
        def refuse_write(arrays, path):
            raise PermissionError(13, "Permission denied", str(path))
        monkeypatch.setattr(npz_cache, "save_npz_atomic", refuse_write)
    build, cfg, ref = _family_builds(family, data_dir, tmp_path, cache)
    _built_twice_with_one_report(build, cfg, ref, sub, caplog)


# ----------------------------------------------------------------------------- 2. MIT-BIH files
def test_truncated_dat_is_refused_naming_file_and_sizes(ecg_copy):
    dat = ecg_copy / "mitdb" / "100.dat"
    dat.write_bytes(dat.read_bytes()[:-1000])
    msg = refusal(mitdb.build, ecg_cfg(ecg_copy, None, verify_files=False))
    assert f"{dat} is truncated" in msg and "1949000 bytes" in msg and "1950000 bytes" in msg
    assert "physionet.org" in msg and "broadcast" not in msg
    # with verification on, the checksum refuses it first
    assert "sha256" in refusal(mitdb.build, ecg_cfg(ecg_copy, None))


@pytest.mark.parametrize("damage, line, problem", [
    (lambda t: t.replace("100 2 360 650000", "100 two 360 650000"), 1, "number of signals"),
    (lambda t: t.replace("100 2 360 650000", "100 2 360 65O000"), 1, "number of samples"),
    (lambda t: t.replace("100.dat 212", "100.dat 2l2", 1), 2, "storage format"),
    (lambda t: "\n".join(t.split("\n")[:2]) + "\n", 2, "says 2 signals but only 1"),
])
def test_header_that_does_not_parse_is_refused_naming_the_line(ecg_copy, damage, line, problem):
    hea = ecg_copy / "mitdb" / "100.hea"
    hea.write_text(damage(hea.read_text()))
    msg = refusal(mitdb.build, ecg_cfg(ecg_copy, None, verify_files=False))
    assert f"{hea}, line {line}:" in msg and problem in msg and "physionet.org" in msg


# ----------------------------------------------------------------------------- 2. UCR / UEA files
@pytest.mark.parametrize("name, ext, split, row, edit, found", [
    ("ECG200", "tsv", "TRAIN", 5, lambda ln: ln.rsplit("\t", 1)[0], "95 values"),
    ("ECG200", "tsv", "TEST", 100, lambda ln: ln + "\t0.5", "97 values"),
    ("Coffee", "txt", "TEST", 3, lambda ln: ln.rstrip() + "  1.5", "287 values"),
])
def test_ragged_label_first_row_is_refused_not_padded(data_dir, tmp_path, name, ext, split,
                                                      row, edit, found):
    rels = [f"UCR/{name}/{name}_{s}.{ext}" for s in ("TRAIN", "TEST")]
    copy = copy_data(data_dir, tmp_path / "data", *rels)
    damaged = copy / "UCR" / name / f"{name}_{split}.{ext}"
    edit_line(damaged, row, edit)
    msg = refusal(ucr_uea.build, archive_cfg("ucr", name, copy))
    assert f"{damaged}, line {row}: {found}" in msg and "line 1 has" in msg
    assert "timeseriesclassification.com" in msg


def _ts_copy(data_dir, tmp_path, archive, name):
    rels = [f"{archive}/{name}/{name}_{s}.ts" for s in ("TRAIN", "TEST")]
    copy = copy_data(data_dir, tmp_path / "data", *rels)
    return copy, copy / archive / name / f"{name}_TRAIN.ts"


def test_ts_header_integer_field_that_is_not_an_integer(data_dir, tmp_path):
    copy, train = _ts_copy(data_dir, tmp_path, "UCR", "GunPoint")
    row = line_of(train, "@seriesLength")
    edit_line(train, row, lambda ln: "@seriesLength abc")
    msg = refusal(ucr_uea.build, archive_cfg("ucr", "GunPoint", copy))
    assert f"{train}, line {row}: @seriesLength 'abc' is not an integer" in msg
    assert "timeseriesclassification.com" in msg


@pytest.mark.parametrize("archive, name, edit, found", [
    ("UEA", "BasicMotions", lambda ln: ln.split(":", 1)[1], "5 dimensions"),
    ("UCR", "GunPoint", lambda ln: "1.0,2.0:" + ln, "2 dimensions"),
])
def test_ts_data_line_with_wrong_dimension_count(data_dir, tmp_path, archive, name, edit, found):
    copy, train = _ts_copy(data_dir, tmp_path, archive, name)
    row = line_of(train, "@data") + 7
    edit_line(train, row, edit)
    msg = refusal(ucr_uea.build, archive_cfg(archive.lower(), name, copy))
    assert f"{train}, line {row}: {found}" in msg and "says" in msg
    assert "timeseriesclassification.com" in msg


def test_ts_data_line_with_a_value_that_is_not_a_number(data_dir, tmp_path):
    copy, train = _ts_copy(data_dir, tmp_path, "UEA", "BasicMotions")
    row = line_of(train, "@data") + 3

    def damage(ln):
        dims = ln.split(":")
        values = dims[2].split(",")
        values[4] = "0.1x3"
        dims[2] = ",".join(values)
        return ":".join(dims)

    edit_line(train, row, damage)
    msg = refusal(ucr_uea.build, archive_cfg("uea", "BasicMotions", copy))
    assert f"{train}, line {row}, dimension 3: value 5 ('0.1x3') is not a number" in msg


# ----------------------------------------------------------------------------- 2. forecasting CSVs
def _csv_cfg(data_dir, family, rel):
    cfg = OmegaConf.create({"data": data_cfg(family), "paths": {"data_dir": str(data_dir)}})
    cfg.data.update({"download": False, "seq_len": 24, "label_len": 12, "pred_len": 12})
    if family == "ett":
        cfg.data.name = Path(rel).stem
    else:
        cfg.data.path = rel
    return cfg


def _set_cell(value):
    def edit(ln):
        fields = ln.split(",")
        fields[3] = value
        return ",".join(fields)
    return edit


CSV_DAMAGE = [
    ("empty", _set_cell(""), "column '{col}' (field 4): the cell is empty or NaN"),
    ("nan", _set_cell("NaN"), "column '{col}' (field 4): the cell is empty or NaN"),
    ("text", _set_cell("1.2.3"), "column '{col}' (field 4): '1.2.3' is not a number"),
    ("short", lambda ln: ln.rsplit(",", 1)[0], "7 fields, but the header (line 1) has 8"),
    ("long", lambda ln: ln + ",7", "9 fields, but the header (line 1) has 8"),
    ("date", lambda ln: "not-a-date" + ln[ln.index(","):], "column 'date' (field 1)"),
]


@pytest.mark.parametrize("family, rel", [("ett", "forecast/ETT-small/ETTh1.csv"),
                                         ("custom", "forecast/illness/national_illness.csv")])
@pytest.mark.parametrize("kind, edit, found", CSV_DAMAGE, ids=[c[0] for c in CSV_DAMAGE])
def test_damaged_csv_row_refused_naming_line_and_column(data_dir, tmp_path, family, rel, kind,
                                                        edit, found):
    copy = copy_data(data_dir, tmp_path / "data", rel)
    csv = copy / rel
    header = csv.read_text().split("\n", 1)[0].split(",")
    edit_line(csv, 700, edit)
    # a blank line above: the reported line is the one an editor shows, not the pandas row
    edit_line(csv, 40, lambda ln: "\n" + ln)
    msg = refusal(forecast_data.build, _csv_cfg(copy, family, rel))
    assert f"{csv}, line 701" in msg, msg
    assert found.format(col=header[3]) in msg
    assert ("ETDataset" if family == "ett" else "Time-Series-Library") in msg


# ----------------------------------------------------------------------------- 2. TF-C files
def _bad_pt(kind, good: dict):
    x, y = good["samples"], good["labels"]
    return {
        "tensor": x,
        "no_labels": {"samples": x},
        "samples_4d": {"samples": x[:, :, :, None], "labels": y},
        "labels_short": {"samples": x, "labels": y[:-3]},
        "labels_2d": {"samples": x, "labels": y[:, None]},
        "samples_text": {"samples": "x", "labels": y},
        "float_labels": {"samples": x, "labels": y.double() + 0.5},
    }[kind]


@pytest.mark.parametrize("kind, found", [
    ("tensor", "expected a dict with 'samples' and 'labels', got Tensor"),
    ("no_labels", "expected a dict with 'samples' and 'labels', got ['samples']"),
    ("samples_4d", "'samples' has shape [60, 1, 178, 1]"),
    ("labels_short", "'labels' [57]"),
    ("labels_2d", "'labels' [60, 1]"),
    ("samples_text", "'samples' is a str, not a numeric tensor"),
    ("float_labels", "'labels' must be integer class indices"),
    ("truncated", "is not a readable torch .pt file"),
])
def test_tfc_file_of_the_wrong_structure_is_refused(data_dir, tmp_path, kind, found):
    copy = copy_data(data_dir, tmp_path / "data", "TFC/Epilepsy/train.pt", "TFC/Epilepsy/val.pt")
    train = copy / "TFC" / "Epilepsy" / "train.pt"
    if kind == "truncated":
        train.write_bytes(train.read_bytes()[:5000])
    else:
        torch.save(_bad_pt(kind, torch.load(train, weights_only=True)), train)
    cfg = OmegaConf.create({"data": data_cfg("tfc"), "paths": {"data_dir": str(copy)}})
    msg = refusal(tfc_data.build, cfg)
    assert str(train) in msg and found in msg and "TFC-pretraining" in msg
