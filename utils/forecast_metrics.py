"""Forecast error metrics as reported by Informer / Autoformer / PatchTST (means over every
window, step and channel)."""
from __future__ import annotations

import numpy as np


def forecast_metrics(pred: np.ndarray, true: np.ndarray, prefix: str = "") -> dict[str, float]:
    """mse, mae, rmse, mape, mspe. MAPE/MSPE divide by the true value, so on z-scored data
    (values near 0) they are large; they are reported because the papers report them."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    err = pred - true
    mse = float(np.mean(err ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = err / true
    rel = rel[np.isfinite(rel)]
    out = {"mse": mse, "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(mse)),
           "mape": float(np.mean(np.abs(rel))) if rel.size else float("nan"),
           "mspe": float(np.mean(rel ** 2)) if rel.size else float("nan")}
    return {prefix + k: v for k, v in out.items()}


def inverse_transform(values: np.ndarray, scaler, out_index) -> np.ndarray:
    """Undo the StandardScaler on [..., C_out] arrays whose channels are the scaler's
    columns ``out_index`` (all of them for M, the target for S/MS)."""
    if scaler is None:
        return np.asarray(values)
    idx = np.asarray(out_index)
    return np.asarray(values) * scaler.scale_[idx] + scaler.mean_[idx]
