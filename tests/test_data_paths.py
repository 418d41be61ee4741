"""Every path a config gives stays inside the data directory (utils/paths.py).

Each test puts a valid copy of the dataset just outside the data directory, so a loader
without the check would read it and succeed; the refusal must name the config key and value.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import copy_data, data_cfg

from data_provider import forecast_data, mitdb, tfc_data, ucr_uea
from utils.download import DataUnavailable
from utils.paths import inside_data_dir

MITDB = [f"mitdb/{r}.{e}" for r in (100, 101) for e in ("hea", "dat", "atr")]
GUNPOINT = [f"UCR/GunPoint/GunPoint_{s}.ts" for s in ("TRAIN", "TEST")]
ILLNESS = "forecast/illness/national_illness.csv"


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    """(the data directory, a folder beside it that the config must not reach)."""
    (tmp_path / "data").mkdir()
    return tmp_path / "data", tmp_path / "outside"


def refused(build, cfg, key: str, value: str) -> str:
    with pytest.raises(ValueError) as e:
        build(cfg)
    assert not isinstance(e.value, DataUnavailable)
    msg = str(e.value)
    assert f"{key}='{value}'" in msg and "outside the data directory" in msg, msg
    return msg


def cfg_of(family, data_dir, **data):
    cfg = OmegaConf.create({"data": data_cfg(family), "seed": 0, "trainer": {"progress": False},
                            "paths": {"data_dir": str(data_dir), "cache_dir": None}})
    cfg.data.update({"download": False, **data})
    return cfg


# ----------------------------------------------------------------------------- the function
def test_inside_data_dir_resolves_and_refuses_what_leaves(tmp_path):
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (data / "in_link").symlink_to(data / "a")
    (data / "out_link").symlink_to(tmp_path / "elsewhere")
    assert inside_data_dir(data, "a", ("data.name", "x.csv")) == data.resolve() / "a" / "x.csv"
    assert inside_data_dir(data, ("data.path", "in_link/x")) == data.resolve() / "a" / "x"
    assert inside_data_dir(data, ("data.path", "a/../a/x")) == data.resolve() / "a" / "x"
    for value in ("../x", "a/../../x", str(tmp_path / "elsewhere"), "out_link", "out_link/x"):
        with pytest.raises(ValueError, match=f"data.path='{value}' leads outside"):
            inside_data_dir(data, ("data.path", value))
    with pytest.raises(ValueError, match="absolute"):    # absolute, even into the data dir
        inside_data_dir(data, ("data.path", str(data / "a")))
    # the key named is the first one whose value leaves
    with pytest.raises(ValueError, match="data.archive='..'"):
        inside_data_dir(data, ("data.archive", ".."), ("data.name", "x"))
    with pytest.raises(ValueError, match="data.name='../../x'"):
        inside_data_dir(data, ("data.archive", "a"), ("data.name", "../../x"))


# ----------------------------------------------------------------------------- forecasting
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_forecast_data_path(data_dir, dirs, how):
    data, outside = dirs
    copy_data(data_dir, outside, ILLNESS)
    target = outside / ILLNESS
    value = {"dotdot": f"../outside/{ILLNESS}", "absolute": str(target),
             "symlink": "forecast/link.csv"}[how]
    if how == "symlink":
        (data / "forecast").mkdir()
        (data / "forecast" / "link.csv").symlink_to(target)
    refused(forecast_data.build, cfg_of("custom", data, path=value), "data.path", value)


def test_forecast_path_inside_the_data_dir_still_loads(data_dir, dirs):
    data, _ = dirs
    copy_data(data_dir, data / "store", ILLNESS)
    (data / "ili.csv").symlink_to(data / "store" / ILLNESS)      # a link that stays inside
    b = forecast_data.build(cfg_of("custom", data, path="ili.csv", seq_len=36, label_len=18,
                                   pred_len=24))
    assert b.meta["columns"][-1] == "OT"


def test_ett_file_name_built_from_data_name(data_dir, dirs):
    data, outside = dirs
    rel = "forecast/ETT-small/ETTh1.csv"
    copy_data(data_dir, outside, rel)
    name = "../../../outside/forecast/ETT-small/ETTh1"     # data.path is built from it
    cfg = cfg_of("ett", data, name=name)
    assert (data / cfg.data.path).resolve() == (outside / rel).resolve()
    refused(forecast_data.build, cfg, "data.name", name)


# ----------------------------------------------------------------------------- MIT-BIH
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_mitdb_subdir(data_dir, dirs, how):
    data, outside = dirs
    copy_data(data_dir, outside, *MITDB)
    value = {"dotdot": "../outside/mitdb", "absolute": str(outside / "mitdb"),
             "symlink": "mitdb"}[how]
    if how == "symlink":
        (data / "mitdb").symlink_to(outside / "mitdb")
    cfg = cfg_of("ecg", data, subdir=value, ds1_records=[101], val_records=[], ds2_records=[100])
    refused(mitdb.build, cfg, "data.subdir", value)


# ----------------------------------------------------------------------------- UCR / UEA
def test_ucr_archive(data_dir, dirs):
    data, outside = dirs
    copy_data(data_dir, outside.parent / "ELSEWHERE", *GUNPOINT)
    # data.archive is upper-cased, as the archive folders are named
    refused(ucr_uea.build, cfg_of("ucr", data, name="GunPoint", archive="../ELSEWHERE/UCR"),
            "data.archive", "../ELSEWHERE/UCR")


def test_ucr_name_through_a_symlink(data_dir, dirs):
    data, outside = dirs
    copy_data(data_dir, outside, *GUNPOINT)
    (data / "UCR").mkdir()
    (data / "UCR" / "GunPoint").symlink_to(outside / "UCR" / "GunPoint")
    refused(ucr_uea.build, cfg_of("ucr", data, name="GunPoint"), "data.name", "GunPoint")


def test_ucr_name_with_dotdot_is_not_a_dataset_name(dirs):
    data, _ = dirs
    with pytest.raises(ValueError, match="not a dataset name"):
        ucr_uea.build(cfg_of("ucr", data, name="../GunPoint"))


# ----------------------------------------------------------------------------- TF-C
@pytest.mark.parametrize("how", ["dotdot", "symlink"])
def test_tfc_name(data_dir, dirs, how):
    data, outside = dirs
    copy_data(data_dir, outside, "TFC/Epilepsy/train.pt", "TFC/Epilepsy/val.pt")
    value = "../../outside/TFC/Epilepsy" if how == "dotdot" else "Epilepsy"
    if how == "symlink":
        (data / "TFC").mkdir()
        (data / "TFC" / "Epilepsy").symlink_to(outside / "TFC" / "Epilepsy")
    refused(tfc_data.build, cfg_of("tfc", data, name=value), "data.name", value)
