"""data.download=true for MIT-BIH, against a local HTTP server on 127.0.0.1 (no internet)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.helpers import data_cfg, require_files

from data_provider import mitdb
from data_provider.mitdb_manifest import MITDB_FILES
from utils.download import DownloadError, sha256_of

REPO = Path(__file__).resolve().parents[1]


def make_cfg(data_dir, cache_dir, url, **data):
    cfg = OmegaConf.create({"data": data_cfg("ecg"),
                            "paths": {"data_dir": str(data_dir), "cache_dir": str(cache_dir)},
                            "seed": 0})
    cfg.data.update({"ds1_records": [101], "val_records": [], "ds2_records": [100],
                     "download": True, "source_url": url, **data})
    return cfg


def test_manifest_matches_the_shared_copy(data_dir):
    folder = data_dir / "mitdb"
    require_files(data_dir, *(f"mitdb/{name}" for name in MITDB_FILES))
    assert len(MITDB_FILES) == 144  # 48 records x .hea/.dat/.atr
    for name, (size, sha) in MITDB_FILES.items():
        assert (folder / name).stat().st_size == size, name
    for name in ("100.atr", "100.hea", "201.atr", "232.hea"):
        assert sha256_of(folder / name) == MITDB_FILES[name][1], name


def test_download_fetches_verified_records_that_then_load(data_dir, tmp_path, serve):
    require_files(data_dir, *(f"mitdb/{r}.{e}" for r in (100, 101, 118) for e in ("hea", "atr", "dat")))
    url = serve(data_dir / "mitdb")
    dest = tmp_path / "data"
    b = mitdb.build(make_cfg(dest, tmp_path / "cache", url))
    got = sorted(p.name for p in (dest / "mitdb").iterdir())
    assert got == ["100.atr", "100.dat", "100.hea", "101.atr", "101.dat", "101.hea"]
    for name in got:
        assert sha256_of(dest / "mitdb" / name) == MITDB_FILES[name][1]
    assert len(b.splits["test"]) == 2273 and len(b.splits["train"]) == 1865
    assert len(b.splits["val"]) == 0
    # the downloaded copy gives exactly what the shared copy gives
    ref = mitdb.build(make_cfg(data_dir, tmp_path / "cache2", url, download=False))
    assert np.array_equal(b.splits["test"].arrays["x"].numpy(), ref.splits["test"].arrays["x"].numpy())


@pytest.mark.parametrize("damage", ["truncated", "same_size_other_bytes"])
def test_corrupt_download_rejected_and_nothing_left(data_dir, tmp_path, serve, damage):
    require_files(data_dir, *(f"mitdb/100.{e}" for e in ("hea", "atr", "dat")))
    served = tmp_path / "served"
    served.mkdir()
    for ext in ("hea", "atr", "dat"):
        shutil.copy(data_dir / "mitdb" / f"100.{ext}", served / f"100.{ext}")
    bad = served / ("100.dat" if damage == "truncated" else "100.atr")
    data = bytearray(bad.read_bytes())
    if damage == "truncated":
        data = data[:-1000]
    else:
        data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    dest = tmp_path / "data"
    cfg = make_cfg(dest, tmp_path / "cache", serve(served))  # needs 101 (in place) and 100 (served)
    (dest / "mitdb").mkdir(parents=True)
    for ext in ("hea", "atr", "dat"):
        shutil.copy(data_dir / "mitdb" / f"101.{ext}", dest / "mitdb")
    with pytest.raises(DownloadError, match="does not match"):
        mitdb.build(cfg)
    assert not (dest / "mitdb" / bad.name).exists()
    assert not list((dest / "mitdb").glob("*.part"))


def test_download_of_unknown_record_refused(tmp_path, serve):
    cfg = make_cfg(tmp_path / "data", tmp_path / "cache", serve(tmp_path),
                   ds1_records=[999], ds2_records=[100])
    with pytest.raises(DownloadError, match="no known size/checksum"):
        mitdb.build(cfg)
