"""Long-horizon forecasting data: the ETT benchmark (family ``ett``) and any CSV with a
``date`` column (family ``custom``), windowed as in the Informer / Autoformer loaders.

Splits (rows of the file):
  ett     12 / 4 / 4 months (hourly rows: 12*30*24, 4*30*24, 4*30*24; ETTm: x4).
  custom  70 % / 10 % / 20 % (the test part is the last int(0.2 N) rows).
The validation and test splits start ``seq_len`` rows before their border, so their first
window forecasts the first row after the border and every row of the part is forecast.
The StandardScaler is fitted on the training rows only. Every window of a split is an item
(``len = rows - seq_len - pred_len + 1``), so nothing is dropped at test time.

An item: x [seq_len, C_in], y [label_len + pred_len, C_out] (the decoder's start token
followed by the horizon), x_mark / y_mark [.., mark_dim] time features, index (window start).
features: M (all -> all), S (target -> target), MS (all -> target). The target column is moved
to the last position (as Autoformer's custom loader does), so MS predicts channel -1.

A damaged file (a row with too few or too many fields, an empty, NaN or non-numeric cell, a
date that does not parse) is refused with its line number as an editor shows it and the
column, before anything trains on it; data.path stays inside the data directory.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from utils.download import DataUnavailable, fetch
from utils.paths import inside_data_dir
from utils.timefeatures import freq_letter, time_features

from .base import DataBundle

# Official ETT release (zhouhaoyi/ETDataset); sizes and SHA-256 of the files as released.
ETT_SOURCE = "https://github.com/zhouhaoyi/ETDataset (folder ETT-small)"
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
ETT_FILES = {
    "ETTh1": (2589657, "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
    "ETTh2": (2417960, "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"),
    "ETTm1": (10360719, "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e"),
    "ETTm2": (9677236, "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd"),
}
CUSTOM_SOURCE = ("the Autoformer / Time-Series-Library dataset collection "
                 "(https://github.com/thuml/Time-Series-Library, 'all_six_datasets')")
SPLITS = ("train", "val", "test")


class WindowDataset(Dataset):
    """Sliding windows over one split's rows; batches are gathered with one index op."""

    def __init__(self, data_x: np.ndarray, data_y: np.ndarray, marks: np.ndarray,
                 seq_len: int, label_len: int, pred_len: int):
        self.x = torch.as_tensor(data_x, dtype=torch.float32)
        self.y = torch.as_tensor(data_y, dtype=torch.float32)
        self.mark = torch.as_tensor(marks, dtype=torch.float32)
        self.seq_len, self.label_len, self.pred_len = seq_len, label_len, pred_len
        self._n = len(self.x) - seq_len - pred_len + 1
        if self._n <= 0:
            raise ValueError(f"a split has {len(self.x)} rows, fewer than seq_len + pred_len = "
                             f"{seq_len + pred_len}; shorten data.seq_len / data.pred_len")
        self._enc = torch.arange(seq_len)
        self._dec = torch.arange(label_len + pred_len) + (seq_len - label_len)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        start = torch.as_tensor(indices, dtype=torch.long)
        if (start < 0).any() or (start >= self._n).any():
            raise IndexError(f"window index out of range [0, {self._n})")
        enc = start[:, None] + self._enc
        dec = start[:, None] + self._dec
        return {"x": self.x[enc], "y": self.y[dec], "x_mark": self.mark[enc],
                "y_mark": self.mark[dec], "index": start}


def _resolve_path(cfg) -> Path:
    d = cfg.data
    data_dir = str(cfg.paths.data_dir)
    if d.family == "ett":  # the default data.path is built from data.name
        inside_data_dir(data_dir, ("data.name", d.name))
    path = inside_data_dir(data_dir, ("data.path", d.path))
    if path.is_file():
        return path
    if d.family == "ett" and d.name in ETT_FILES and bool(d.get("download", False)):
        size, sha = ETT_FILES[d.name]
        return fetch(ETT_URL.format(name=d.name), path, size=size, sha256=sha)
    source = ETT_SOURCE if d.family == "ett" else CUSTOM_SOURCE
    hint = " or run with data.download=true" if d.family == "ett" and d.name in ETT_FILES else ""
    raise DataUnavailable(
        f"forecasting data file not found: {path} (paths.data_dir={cfg.paths.data_dir}, "
        f"data.path={d.path}). Get it from {source} and place it there{hint}.")


# ----------------------------------------------------------------------------- damaged CSVs
def _fix(d) -> str:
    if d.family == "ett" and d.get("name") in ETT_FILES:
        return (f"delete the file and run with data.download=true, or get a clean copy from "
                f"{ETT_SOURCE}")
    return f"repair or remove that row, or get a clean copy of the file from {CUSTOM_SOURCE}"


def _check_row_widths(path: Path, fix: str) -> None:
    """Every row has as many fields as the header; pandas would fill a short row with NaN
    and shift a long one into the index."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next((row for row in reader if row), [])
        header_line = reader.line_num
        for row in reader:
            if row and len(row) != len(header):
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, but the header (line "
                    f"{header_line}) has {len(header)} columns; the row is cut or has extra "
                    f"values: {fix}.")


def _line_of_row(path: Path, row: int) -> int:
    """Line number (1-based, as an editor shows it) of data row `row` of the DataFrame;
    blank lines are skipped by pandas and counted here."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        records = (reader.line_num for r in reader if r)
        next(records)  # the header
        for i, line in enumerate(records):
            if i == row:
                return line
    return -1


def _cell(path: Path, df: pd.DataFrame, row: int, col: str) -> str:
    return (f"{path}, line {_line_of_row(path, row)}, column '{col}' (field "
            f"{list(df.columns).index(col) + 1})")


def _numeric(path: Path, df: pd.DataFrame, cols: list[str], fix: str) -> np.ndarray:
    """float64 values of `cols`, or a refusal naming the first cell that is not a finite
    number (a NaN here trains to a NaN loss)."""
    try:
        values = df[cols].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        parsed = df[cols].apply(pd.to_numeric, errors="coerce")
        bad = (parsed.isna() & df[cols].notna()).to_numpy()
        row, j = np.argwhere(bad)[0]
        raise ValueError(f"{_cell(path, df, row, cols[j])}: '{df[cols[j]].iloc[row]}' is not a "
                         f"number; every value column must hold numbers: {fix}.") from None
    bad = ~np.isfinite(values)
    if bad.any():
        row, j = np.argwhere(bad)[0]
        what = "empty or NaN" if np.isnan(values[row, j]) else "infinite"
        raise ValueError(f"{_cell(path, df, row, cols[j])}: the cell is {what}; forecasting "
                         f"needs a value in every cell: {fix}.")
    return values


def _dates(path: Path, df: pd.DataFrame, fix: str) -> pd.DatetimeIndex:
    """The 'date' column, or a refusal naming the first cell that is empty or not a date."""
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(df["date"]))
    except (ValueError, TypeError):
        dates = pd.DatetimeIndex(pd.to_datetime(df["date"], errors="coerce"))
    bad = np.flatnonzero(dates.isna())
    if len(bad):
        row, cell = int(bad[0]), df["date"].iloc[int(bad[0])]
        what = "the cell is empty" if pd.isna(cell) else f"'{cell}' is not a date"
        raise ValueError(f"{_cell(path, df, row, 'date')}: {what}: {fix}.")
    return dates


def _borders(family: str, name: str, n_rows: int, seq_len: int, split=None):
    """Row borders [b1, b2) of train / val / test, the later two starting seq_len early."""
    if family == "ett":
        unit = 30 * 24 * (4 if str(name).lower().startswith("ettm") else 1)
        n_train, n_val, n_test = 12 * unit, 4 * unit, 4 * unit
        if n_train + n_val + n_test > n_rows:
            raise ValueError(f"{name} has {n_rows} rows, fewer than the 20 months the ETT split "
                             f"needs ({n_train + n_val + n_test}); is it the official file?")
    else:
        r_train, _, r_test = split if split is not None else (0.7, 0.1, 0.2)
        n_train, n_test = int(n_rows * r_train), int(n_rows * r_test)
        n_val = n_rows - n_train - n_test
    b1 = [0, n_train - seq_len, n_train + n_val - seq_len]
    b2 = [n_train, n_train + n_val, n_train + n_val + n_test]
    if family != "ett":
        b1[2], b2[2] = n_rows - n_test - seq_len, n_rows
    if min(b1) < 0:
        raise ValueError(f"data.seq_len={seq_len} is longer than the training part "
                         f"({n_train} rows); shorten it")
    return b1, b2


def infer_step(dates: pd.DatetimeIndex):
    """The data's own sampling step as a pandas offset (for dates past the end of the file)."""
    tail = dates[-min(len(dates), 200):]
    f = pd.infer_freq(tail) if len(tail) >= 3 else None
    if f is not None:
        return pd.tseries.frequencies.to_offset(f)
    return pd.tseries.frequencies.to_offset(pd.Series(tail).diff().mode().iloc[0])


def future_dates(last: pd.Timestamp, step, n: int) -> pd.DatetimeIndex:
    return pd.date_range(last, periods=n + 1, freq=step)[1:]


def _future_window(values, marks, dates, step, freq, timeenc, seq_len, label_len, pred_len) -> dict:
    """The last window of the file, for forecasting past its end (task.predict_future)."""
    fut_dates = future_dates(dates[-1], step, pred_len)
    fut_marks = time_features(fut_dates, timeenc=timeenc, freq=freq)
    return {
        "x": torch.as_tensor(values[-seq_len:])[None],
        "x_mark": torch.as_tensor(marks[-seq_len:])[None],
        "y_mark": torch.as_tensor(np.concatenate([marks[len(marks) - label_len:], fut_marks]))[None],
        "dates": fut_dates,
    }


def build(cfg) -> DataBundle:
    d = cfg.data
    features = str(d.features).upper()
    if features not in ("M", "S", "MS"):
        raise ValueError(f"data.features must be one of M, S, MS, got '{d.features}'")
    seq_len, label_len, pred_len = int(d.seq_len), int(d.label_len), int(d.pred_len)
    if label_len > seq_len:
        raise ValueError(f"data.label_len={label_len} must not exceed data.seq_len={seq_len}: "
                         f"the decoder's start token is the end of the input window")

    path = _resolve_path(cfg)
    fix = _fix(d)
    _check_row_widths(path, fix)
    df = pd.read_csv(path)
    if "date" not in df.columns:
        raise ValueError(f"{path} has no 'date' column (columns: {list(df.columns)[:10]}...); "
                         f"forecasting CSVs need one")
    target = str(d.target)
    if target not in df.columns:
        raise ValueError(f"data.target='{target}' is not a column of {path}; columns: "
                         f"{[c for c in df.columns if c != 'date']}")
    cols = [c for c in df.columns if c not in ("date", target)] + [target]
    dates = _dates(path, df, fix)
    values = _numeric(path, df, cols if features != "S" else [target], fix)

    split = tuple(d.get("split", (0.7, 0.1, 0.2)) or (0.7, 0.1, 0.2))
    b1, b2 = _borders(d.family, d.get("name", ""), len(df), seq_len, split)

    scaler = None
    if bool(d.get("scale", True)):
        scaler = StandardScaler().fit(values[b1[0]:b2[0]])  # training rows only
        values = scaler.transform(values)
    values = values.astype(np.float32)
    out = values[:, -1:] if features == "MS" else values

    step = infer_step(dates)
    freq = str(d.freq) if d.get("freq") else step.freqstr
    timeenc = int(d.get("timeenc", 1))
    marks = time_features(dates, timeenc=timeenc, freq=freq)

    splits = {name: WindowDataset(values[b1[i]:b2[i]], out[b1[i]:b2[i]], marks[b1[i]:b2[i]],
                                  seq_len, label_len, pred_len)
              for i, name in enumerate(SPLITS)}

    future = _future_window(values, marks, dates, step, freq, timeenc, seq_len, label_len, pred_len)
    in_cols = cols if features != "S" else [target]
    out_cols = [target] if features in ("S", "MS") else cols
    meta = {
        "in_channels": values.shape[1], "enc_in": values.shape[1], "dec_in": values.shape[1],
        "c_out": out.shape[1], "seq_len": seq_len, "label_len": label_len,
        "pred_len": pred_len, "mark_dim": marks.shape[1], "freq": freq_letter(freq),
        "scaler": scaler, "out_index": [in_cols.index(c) for c in out_cols],
        "target_index": in_cols.index(target), "columns": in_cols, "out_columns": out_cols,
        "dates": dates, "split_start": dict(zip(SPLITS, b1)), "features": features,
        "future": future,
    }
    return DataBundle(splits=splits, meta=meta)
