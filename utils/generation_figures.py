"""Figure of real beside generated series, per class (for TensorBoard)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def real_vs_generated_figure(real: list[np.ndarray], generated: list[np.ndarray],
                             class_names: list[str], title: str = "real vs generated"):
    """One row per class: its real series (left) and generated series (right), each a list
    entry [n, T] (one channel), on shared y limits per row so the two read alike."""
    rows = len(class_names)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 1.9 * rows + 0.4), squeeze=False, sharex=True)
    for row, (name, r, g) in enumerate(zip(class_names, real, generated)):
        for ax, series, color, label in ((axes[row, 0], r, "k", "real"),
                                         (axes[row, 1], g, "tab:red", "generated")):
            for s in series:
                ax.plot(s, color=color, lw=0.8, alpha=0.7)
            if row == 0:
                ax.set_title(label, fontsize=9)
        values = [v for v in (r, g) if len(v)]
        if values:
            both = np.concatenate([np.ravel(v) for v in values])
            pad = 0.05 * (both.max() - both.min() + 1e-9)
            for ax in axes[row]:
                ax.set_ylim(both.min() - pad, both.max() + pad)
        axes[row, 0].set_ylabel(str(name), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
