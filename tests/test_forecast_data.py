"""Forecasting data: split borders, scaler fitted on training rows only, every window kept,
time features, future dates, error messages."""
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from data_provider.forecast_data import build
from data_provider.loader import make_loader
from utils.timefeatures import time_features
from tests.helpers import require_files

H = 30 * 24  # rows per ETT-hour "month"


def cfg_for(data_dir, family="ett", name="ETTh1", path=None, **kw):
    path = path or f"forecast/ETT-small/{name}.csv"
    d = {"family": family, "name": name, "path": path, "features": "M", "target": "OT",
         "seq_len": 96, "label_len": 48, "pred_len": 24, "freq": None, "timeenc": 1,
         "scale": True, "split": [0.7, 0.1, 0.2]}
    d.update(kw)
    return OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "data": d})


@pytest.fixture(scope="module")
def etth1(data_dir):
    bundle = build(cfg_for(data_dir))            # absent: DataUnavailable, the tests skip
    return pd.read_csv(data_dir / "forecast/ETT-small/ETTh1.csv"), bundle


def test_ett_borders_and_window_counts(etth1):
    raw, b = etth1
    seq, pred = 96, 24
    assert len(b.splits["train"]) == 12 * H - seq - pred + 1
    assert len(b.splits["val"]) == 4 * H - pred + 1     # starts seq_len before its border
    assert len(b.splits["test"]) == 4 * H - pred + 1
    assert b.meta["split_start"] == {"train": 0, "val": 12 * H - seq, "test": 16 * H - seq}
    # first test window forecasts the first test row, the last one the last test row
    scaler = b.meta["scaler"]
    vals = raw.drop(columns="date").to_numpy()
    first = b.splits["test"][0]["y"][-pred:].numpy()
    assert np.allclose(first, scaler.transform(vals[16 * H:16 * H + pred]), atol=1e-5)
    last = b.splits["test"][len(b.splits["test"]) - 1]["y"][-1].numpy()
    assert np.allclose(last, scaler.transform(vals[20 * H - 1:20 * H]), atol=1e-5)


def test_scaler_uses_training_rows_only(etth1):
    raw, b = etth1
    vals = raw.drop(columns="date").to_numpy()
    scaler = b.meta["scaler"]
    assert np.allclose(scaler.mean_, vals[:12 * H].mean(0))
    assert np.allclose(scaler.scale_, vals[:12 * H].std(0))
    assert not np.allclose(scaler.mean_, vals[:20 * H].mean(0), rtol=1e-3)
    x0 = b.splits["train"][0]["x"].numpy()
    assert np.allclose(x0, (vals[:96] - vals[:12 * H].mean(0)) / vals[:12 * H].std(0), atol=1e-4)


def test_window_layout_start_token_and_marks(etth1):
    _, b = etth1
    item = b.splits["val"][5]
    assert item["x"].shape == (96, 7) and item["y"].shape == (48 + 24, 7)
    assert np.allclose(item["y"][:48], item["x"][-48:])          # start token = end of input
    assert item["x_mark"].shape == (96, 4) and item["y_mark"].shape == (72, 4)
    assert np.allclose(item["y_mark"][:48], item["x_mark"][-48:])


def test_test_loader_yields_every_window(etth1):
    _, b = etth1
    ds = b.splits["test"]
    loader = make_loader(ds, batch_size=512, train=False, seed=0, drop_last=True)
    idx = np.concatenate([batch["index"].numpy() for batch in loader])
    assert len(idx) == len(ds) and np.array_equal(idx, np.arange(len(ds)))


def test_ettm_borders_are_four_times_longer(data_dir):
    b = build(cfg_for(data_dir, name="ETTm1"))
    assert b.meta["split_start"]["test"] == 4 * 16 * H - 96
    assert len(b.splits["test"]) == 4 * 4 * H - 24 + 1
    assert b.meta["mark_dim"] == 5 and b.meta["freq"] == "t"     # 15-minute data


def test_features_s_and_ms(data_dir):
    s = build(cfg_for(data_dir, features="S"))
    assert s.splits["train"][0]["x"].shape == (96, 1) and s.meta["c_out"] == 1
    ms = build(cfg_for(data_dir, features="MS"))
    item = ms.splits["train"][0]
    assert item["x"].shape == (96, 7) and item["y"].shape == (72, 1)
    assert np.allclose(item["y"][:48, 0], item["x"][-48:, -1])  # target OT is the last channel
    assert ms.meta["out_columns"] == ["OT"] and ms.meta["enc_in"] == 7


def test_custom_csv_split_and_target_last(data_dir):
    path = "forecast/exchange_rate/exchange_rate.csv"
    require_files(data_dir, path)
    raw = pd.read_csv(data_dir / path)
    n = len(raw)
    n_train, n_test = int(n * 0.7), int(n * 0.2)
    b = build(cfg_for(data_dir, family="custom", name="custom", path=path, target="0"))
    assert b.meta["columns"][-1] == "0"                  # the target column is moved last
    assert len(b.splits["test"]) == n_test - 24 + 1
    assert b.meta["split_start"]["test"] == n - n_test - 96
    assert np.allclose(b.meta["scaler"].mean_[-1], raw["0"].to_numpy()[:n_train].mean())
    assert b.meta["freq"] == "d"


def test_time_features():
    dates = pd.to_datetime(["2016-07-01 00:00", "2016-12-31 23:00"])
    tf = time_features(dates, timeenc=1, freq="h")  # hour, weekday, day of month, day of year
    assert tf.shape == (2, 4)
    assert np.allclose(tf[0], [-0.5, 4 / 6 - 0.5, -0.5, 182 / 365 - 0.5])
    assert np.allclose(tf[1, 0], 0.5)
    cal = time_features(dates, timeenc=0, freq="15min")       # month, day, weekday, hour, minute
    assert cal.tolist()[1] == [12, 31, 5, 23, 0]


def test_future_dates_follow_the_file(etth1, data_dir):
    _, b = etth1
    fut = b.meta["future"]
    assert list(fut["dates"][:2]) == [pd.Timestamp("2018-06-26 20:00"), pd.Timestamp("2018-06-26 21:00")]
    assert len(fut["dates"]) == 24 and fut["x"].shape == (1, 96, 7)
    assert fut["y_mark"].shape == (1, 72, 4)
    weekly = build(cfg_for(data_dir, family="custom", path="forecast/illness/national_illness.csv",
                           seq_len=36, label_len=18, pred_len=24))
    d = weekly.meta["future"]["dates"]
    assert d[0] == pd.Timestamp("2020-07-07") and (np.diff(d.values) == np.timedelta64(7, "D")).all()


def test_missing_file_names_path_and_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="ETDataset") as e:
        build(cfg_for(tmp_path))
    assert str(tmp_path / "forecast/ETT-small/ETTh1.csv") in str(e.value)
    with pytest.raises(FileNotFoundError, match="Time-Series-Library"):
        build(cfg_for(tmp_path, family="custom", path="forecast/x.csv"))


def test_bad_values_are_named(data_dir):
    with pytest.raises(ValueError, match="data.target='nope'"):
        build(cfg_for(data_dir, target="nope"))
    with pytest.raises(ValueError, match="data.features"):
        build(cfg_for(data_dir, features="X"))
    with pytest.raises(ValueError, match="label_len"):
        build(cfg_for(data_dir, seq_len=24, label_len=48))
