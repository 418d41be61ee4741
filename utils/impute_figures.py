"""Figure of imputed windows against the truth (for TensorBoard)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def imputation_figure(true, pred, hidden, title: str = "imputation"):
    """true, pred, hidden: [n, T] of one channel; hidden is True where the value was hidden."""
    n = len(true)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), squeeze=False)
    for ax, t, p, h in zip(axes[:, 0], true, pred, hidden):
        steps = np.arange(len(t))
        ax.plot(steps, t, color="k", lw=1, label="truth")
        ax.plot(steps[~h], t[~h], ".", color="0.5", ms=3, label="observed")
        ax.plot(steps[h], p[h], "x", color="tab:red", ms=4, label="imputed")
    axes[0, 0].legend(loc="upper left", fontsize=7)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig
