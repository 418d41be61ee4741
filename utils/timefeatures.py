"""Time-stamp features for forecasting models (the Informer / Autoformer encodings).

``timeenc=0`` gives integer calendar fields (month, day, weekday, hour, minute//15) for the
fixed/learned temporal embeddings; ``timeenc=1`` gives real features scaled to [-0.5, 0.5]
chosen by the data frequency (Informer's ``timeF`` embedding, its default).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset


# --- normalised features, each in [-0.5, 0.5] --------------------------------------------
def second_of_minute(ix: pd.DatetimeIndex) -> np.ndarray:
    return ix.second / 59.0 - 0.5


def minute_of_hour(ix):
    return ix.minute / 59.0 - 0.5


def hour_of_day(ix):
    return ix.hour / 23.0 - 0.5


def day_of_week(ix):
    return ix.dayofweek / 6.0 - 0.5


def day_of_month(ix):
    return (ix.day - 1) / 30.0 - 0.5


def day_of_year(ix):
    return (ix.dayofyear - 1) / 365.0 - 0.5


def month_of_year(ix):
    return (ix.month - 1) / 11.0 - 0.5


def week_of_year(ix):
    return (ix.isocalendar().week.to_numpy() - 1) / 52.0 - 0.5


# Finest unit first: a frequency gets the features of its own unit and every coarser one
# that still varies inside a year.
_FEATURES = {
    "s": [second_of_minute, minute_of_hour, hour_of_day, day_of_week, day_of_month, day_of_year],
    "t": [minute_of_hour, hour_of_day, day_of_week, day_of_month, day_of_year],
    "h": [hour_of_day, day_of_week, day_of_month, day_of_year],
    "d": [day_of_week, day_of_month, day_of_year],
    "b": [day_of_week, day_of_month, day_of_year],
    "w": [day_of_month, week_of_year],
    "m": [month_of_year],
    "a": [],
}
# Calendar fields (timeenc=0) per frequency, in the order the temporal embedding expects.
_CALENDAR = {
    "s": ["month", "day", "weekday", "hour", "minute"],
    "t": ["month", "day", "weekday", "hour", "minute"],
    "h": ["month", "day", "weekday", "hour"],
    "d": ["month", "day", "weekday"],
    "b": ["month", "day", "weekday"],
    "w": ["month"],
    "m": ["month"],
    "a": [],
}


def freq_letter(freq: str) -> str:
    """Reduce a pandas frequency ('h', '15min', 'D', 'W-TUE', 't', ...) to Informer's letter."""
    f = str(freq).strip()
    if f.lower() in _FEATURES:
        return f.lower()
    try:
        off = to_offset(f)
    except ValueError as e:
        raise ValueError(f"unknown time frequency '{freq}' (data.freq); use a pandas frequency "
                         f"such as h, 15min, D, W or one of {sorted(_FEATURES)}") from e
    kinds = [(offsets.Second, "s"), (offsets.Minute, "t"), (offsets.Hour, "h"),
             (offsets.BusinessDay, "b"), (offsets.Day, "d"), (offsets.Week, "w"),
             (offsets.MonthBegin, "m"), (offsets.MonthEnd, "m"),
             (offsets.YearBegin, "a"), (offsets.YearEnd, "a")]
    for kind, letter in kinds:
        if isinstance(off, kind):
            return letter
    raise ValueError(f"time frequency '{freq}' is not supported for time features; "
                     f"use one of {sorted(_FEATURES)}")


def time_features(dates, timeenc: int = 1, freq: str = "h") -> np.ndarray:
    """dates (anything pd.DatetimeIndex accepts) -> float32 array [len(dates), n_features]."""
    ix = pd.DatetimeIndex(dates)
    letter = freq_letter(freq)
    if timeenc == 0:
        fields = {"month": ix.month, "day": ix.day, "weekday": ix.dayofweek,
                  "hour": ix.hour, "minute": ix.minute // 15}
        cols = [np.asarray(fields[name]) for name in _CALENDAR[letter]]
    elif timeenc == 1:
        cols = [np.asarray(f(ix), dtype=np.float64) for f in _FEATURES[letter]]
    else:
        raise ValueError(f"data.timeenc must be 0 (calendar fields) or 1 (normalised time "
                         f"features), got {timeenc}")
    if not cols:
        return np.zeros((len(ix), 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


def calendar_field_names(freq: str) -> list[str]:
    return list(_CALENDAR[freq_letter(freq)])
