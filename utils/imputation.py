"""What task=impute hides and the baselines it is scored beside.

Masks are boolean tensors [..., T, C], True where a value is hidden from the model.
``random`` hides each value with probability ``rate`` (as Time-Series-Library's imputation
task does); ``gaps`` hides, in every channel, one run of round(rate * T) consecutive steps at
a random start (a sensor that drops out for a while). Training windows get fresh masks at
every step from torch's seeded generator; a validation or test window gets the same mask in
every run, drawn from a generator seeded with (eval_seed, window index), so every model is
scored on the same hidden values whatever its batch size.

The baselines fill the hidden values of each window and channel from its observed ones:
``linear`` interpolates between the nearest observed values before and after (holding the
nearest one at the window's edges), ``mean`` takes the mean of the observed values. A
channel with nothing observed gets 0, the training mean of z-scored data.
"""
from __future__ import annotations

import numpy as np
import torch

MASK_KINDS = ("random", "gaps")


def check_mask(kind: str, rate: float) -> None:
    if kind not in MASK_KINDS:
        raise ValueError(f"task.mask={kind!r} is not known; choose one of {list(MASK_KINDS)}")
    if not 0.0 < rate < 1.0:
        raise ValueError(f"task.mask_rate={rate} must lie strictly between 0 and 1 (the share "
                         "of values hidden)")


def gap_length(rate: float, steps: int) -> int:
    return min(steps, max(1, round(rate * steps)))


def draw_hidden(shape: tuple[int, ...], kind: str, rate: float, device=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A hidden-value mask of ``shape`` [..., T, C] (True = hidden)."""
    if kind == "random":
        return torch.rand(shape, device=device, generator=generator) < rate
    steps = shape[-2]
    length = gap_length(rate, steps)
    lead = (*shape[:-2], 1, shape[-1])
    start = torch.randint(0, steps - length + 1, lead, device=device, generator=generator)
    t = torch.arange(steps, device=device).view(*([1] * (len(shape) - 2)), steps, 1)
    return (t >= start) & (t < start + length)


def evaluation_hidden(indices: torch.Tensor, steps: int, channels: int, kind: str, rate: float,
                      seed: int) -> torch.Tensor:
    """The fixed masks [B, T, C] of the windows ``indices`` (on the CPU)."""
    g = torch.Generator()
    masks = []
    for i in indices.tolist():
        g.manual_seed(int(seed) * 1_000_003 + int(i))
        masks.append(draw_hidden((steps, channels), kind, rate, generator=g))
    return torch.stack(masks)


def _rows(values: np.ndarray, hidden: np.ndarray):
    """[N, T, C] -> one row per window and channel, [N * C, T]."""
    return (np.moveaxis(values, -1, 1).reshape(-1, values.shape[1]),
            np.moveaxis(hidden, -1, 1).reshape(-1, hidden.shape[1]))


def _back(rows: np.ndarray, shape) -> np.ndarray:
    return np.moveaxis(rows.reshape(shape[0], shape[2], shape[1]), 1, -1)


def linear_fill(values: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """``values`` [N, T, C] with every hidden value replaced by linear interpolation along
    time between the observed ones (np.interp per window and channel, vectorised)."""
    v, h = _rows(np.asarray(values, dtype=np.float64), np.asarray(hidden, dtype=bool))
    steps = v.shape[1]
    t = np.broadcast_to(np.arange(steps), v.shape)
    prev = np.maximum.accumulate(np.where(h, -1, t), axis=1)              # last observed <= t
    nxt = np.minimum.accumulate(np.where(h, steps, t)[:, ::-1], axis=1)[:, ::-1]  # first >= t
    none = prev[:, -1] < 0                                                # nothing observed
    prev_c, nxt_c = np.where(prev < 0, nxt, prev), np.where(nxt >= steps, prev, nxt)
    prev_c, nxt_c = np.clip(prev_c, 0, steps - 1), np.clip(nxt_c, 0, steps - 1)
    rows = np.arange(len(v))[:, None]
    a, b = v[rows, prev_c], v[rows, nxt_c]
    span = nxt_c - prev_c
    w = np.divide(t - prev_c, span, out=np.zeros(v.shape), where=span > 0)
    filled = np.where(h, a + (b - a) * w, v)
    filled[none] = 0.0
    return _back(filled, values.shape)


def mean_fill(values: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """``values`` [N, T, C] with every hidden value replaced by the mean of the observed
    values of its window and channel."""
    v, h = _rows(np.asarray(values, dtype=np.float64), np.asarray(hidden, dtype=bool))
    seen = (~h).sum(axis=1)
    mean = np.divide(np.where(h, 0.0, v).sum(axis=1), seen, out=np.zeros(len(v)), where=seen > 0)
    return _back(np.where(h, mean[:, None], v), values.shape)


BASELINES = {"linear": linear_fill, "mean": mean_fill}


def hidden_errors(pred: np.ndarray, true: np.ndarray, hidden: np.ndarray, prefix: str = "") -> dict:
    """MSE and MAE over the hidden values only."""
    err = (np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64))[np.asarray(hidden, bool)]
    if err.size == 0:
        return {f"{prefix}mse": float("nan"), f"{prefix}mae": float("nan")}
    return {f"{prefix}mse": float(np.mean(err ** 2)), f"{prefix}mae": float(np.mean(np.abs(err)))}
