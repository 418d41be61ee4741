"""TS2Vec's forecasting protocol: causal sliding representations + ridge regression.

Every time step t of the (scaled) series is encoded from x[t - padding .. t] only
(``model.encode(..., causal=True, sliding_length=1, sliding_padding=padding)``); a ridge
regression maps the representation at t to the next ``pred_len`` values of the target
columns. The ridge penalty is chosen on the validation slice by RMSE + MAE over
0.1 ... 1000 and the model refitted on the training slice. The first ``padding`` training
steps, whose windows are cut off by the series start, are dropped from the ridge fit.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

ALPHAS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


def forecast_samples(features: np.ndarray, data: np.ndarray, pred_len: int, drop: int = 0):
    """features [N, T, D], data [N, T, C] -> (X [M, D], Y [M, pred_len * C]) pairing the
    representation at t with data[t+1 .. t+pred_len], for every t that has a full horizon."""
    n, t = data.shape[:2]
    if t <= pred_len:
        raise ValueError(f"a slice of {t} steps is too short for pred_len={pred_len}")
    feats = features[:, :-pred_len]
    labels = np.stack([data[:, 1 + i:1 + t + i - pred_len] for i in range(pred_len)], axis=2)
    feats, labels = feats[:, drop:], labels[:, drop:]
    return feats.reshape(-1, feats.shape[-1]), labels.reshape(-1, pred_len * data.shape[-1])


def fit_ridge(train_x, train_y, val_x, val_y, alphas=ALPHAS, max_samples: int = 100000,
              seed: int = 0) -> Ridge:
    if len(train_x) > max_samples:
        train_x, _, train_y, _ = train_test_split(train_x, train_y, train_size=max_samples,
                                                  random_state=seed)
    if len(val_x) > max_samples:
        val_x, _, val_y, _ = train_test_split(val_x, val_y, train_size=max_samples,
                                              random_state=seed)
    scores = []
    for a in alphas:
        pred = Ridge(alpha=a).fit(train_x, train_y).predict(val_x)
        scores.append(np.sqrt(((pred - val_y) ** 2).mean()) + np.abs(pred - val_y).mean())
    return Ridge(alpha=alphas[int(np.argmin(scores))]).fit(train_x, train_y)


def evaluate_forecasting(model, data: np.ndarray, train_slice: slice, val_slice: slice,
                         test_slice: slice, pred_lens, n_covariate_cols: int = 0,
                         padding: int = 200, batch_size: int = 256, seed: int = 0) -> dict:
    """data [N, T, C] scaled with training statistics; the first ``n_covariate_cols``
    channels are inputs only (e.g. time features), the rest are forecast. Returns
    {pred_len: {"mse", "mae", "alpha"}} on the scaled values, averaged over every test window."""
    reprs = model.encode(data, pooling=None, causal=True, sliding_length=1,
                         sliding_padding=padding, batch_size=batch_size)
    reprs = np.asarray(reprs)
    target = np.asarray(data)[..., n_covariate_cols:]
    out = {}
    for h in pred_lens:
        tr = forecast_samples(reprs[:, train_slice], target[:, train_slice], h, drop=padding)
        va = forecast_samples(reprs[:, val_slice], target[:, val_slice], h)
        te = forecast_samples(reprs[:, test_slice], target[:, test_slice], h)
        ridge = fit_ridge(*tr, *va, seed=seed)
        pred = ridge.predict(te[0])
        out[h] = {"mse": float(((pred - te[1]) ** 2).mean()),
                  "mae": float(np.abs(pred - te[1]).mean()), "alpha": float(ridge.alpha)}
    return out
