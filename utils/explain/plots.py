"""Figures: an ECG trace over its saliency heatmap (one row per method, colour bar, class
and score in the title) and the per-class average saliency profiles."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CMAP = "inferno"


def _trace_over_heatmap(ax, trace: np.ndarray, saliency: np.ndarray, label: str):
    """trace [T, C], saliency [T] -> heatmap as the background of the axes, trace on top."""
    t = np.arange(len(trace))
    lo, hi = float(np.min(trace)), float(np.max(trace))
    pad = 0.05 * (hi - lo or 1.0)
    image = ax.imshow(saliency[None, :], aspect="auto", cmap=CMAP, alpha=0.85,
                      extent=(-0.5, len(trace) - 0.5, lo - pad, hi + pad), origin="lower")
    for c in range(trace.shape[1]):
        ax.plot(t, trace[:, c], color="cyan" if c == 0 else None, lw=1.2)
    ax.set_ylabel(label)
    ax.set_xlim(-0.5, len(trace) - 0.5)
    return image


def plot_explanation(trace: np.ndarray, maps: Mapping[str, np.ndarray], title: str):
    """trace [T, C] (or [T]); maps: method -> saliency [T] (raw values, shown as they are,
    the colour bar gives the scale). Returns the Figure."""
    trace = np.asarray(trace, dtype=np.float64)
    trace = trace[:, None] if trace.ndim == 1 else trace
    fig, axes = plt.subplots(len(maps), 1, figsize=(8, 1.8 * len(maps) + 0.6), sharex=True,
                             squeeze=False)
    for ax, (method, sal) in zip(axes[:, 0], maps.items()):
        image = _trace_over_heatmap(ax, trace, np.asarray(sal, dtype=np.float64), method)
        fig.colorbar(image, ax=ax, pad=0.01, label="saliency")
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_class_profiles(profiles: Mapping[str, np.ndarray], mean_traces: np.ndarray,
                        class_names: Sequence[str], counts: Sequence[int]):
    """profiles: method -> [K, T] mean normalised saliency; mean_traces [K, T, C] mean input
    of each class; one column per class, one row per method. Returns the Figure."""
    methods = list(profiles)
    k = len(class_names)
    fig, axes = plt.subplots(len(methods), k, figsize=(3.2 * k + 1, 1.8 * len(methods) + 0.6),
                             sharex=True, squeeze=False)
    image = None
    for j, name in enumerate(class_names):
        axes[0, j].set_title(f"{name} (n={counts[j]})")
        for i, method in enumerate(methods):
            ax = axes[i, j]
            prof = profiles[method][j]
            if np.isnan(prof).all():
                ax.set_axis_off()
                continue
            image = _trace_over_heatmap(ax, mean_traces[j], prof, method if j == 0 else "")
            image.set_clim(0.0, 1.0)
    if image is not None:
        fig.colorbar(image, ax=axes, pad=0.01, label="mean normalised saliency")
    fig.suptitle("per-class average saliency (maps scaled to [0, 1] per beat)")
    return fig


def figure_to_png(fig, path, close: bool = True) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    if close:
        plt.close(fig)
