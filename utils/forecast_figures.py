"""Figure of forecasts against the truth for a few test windows (for TensorBoard)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def forecast_figure(history, true, pred, title: str = "forecast"):
    """history: list of [seq_len] inputs; true, pred: [n, pred_len] (one channel)."""
    n = len(true)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), squeeze=False)
    for ax, h, t, p in zip(axes[:, 0], history, true, pred):
        past = np.arange(-len(h), 0)
        future = np.arange(len(t))
        ax.plot(past, h, color="0.5", lw=1, label="input")
        ax.plot(future, t, color="k", lw=1, label="truth")
        ax.plot(future, p, color="tab:red", lw=1, label="forecast")
        ax.axvline(-0.5, color="0.8", lw=0.8)
    axes[0, 0].legend(loc="upper left", fontsize=7)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig
