"""Figure of detected beats against the reference beats on stretches of a record (TensorBoard)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def detection_figure(stretches, class_names, title: str = "detections"):
    """stretches: (signal [T] of the first lead, reference (positions, classes), detected
    (positions, classes), label) with positions in steps of the signal."""
    fig, axes = plt.subplots(len(stretches), 1, figsize=(10, 2.2 * len(stretches)), squeeze=False)
    for ax, (sig, (ref_pos, ref_cls), (det_pos, det_cls), label) in zip(axes[:, 0], stretches):
        ax.plot(np.arange(len(sig)), sig, color="k", lw=0.8)
        top, bottom = float(np.max(sig)), float(np.min(sig))
        for p, c in zip(ref_pos, ref_cls):
            ax.annotate(class_names[c], (p, top), color="tab:blue", ha="center", fontsize=7)
        ax.plot(det_pos, np.full(len(det_pos), bottom), "^", color="tab:red", ms=5)
        for p, c in zip(det_pos, det_cls):
            ax.annotate(class_names[c], (p, bottom), color="tab:red", ha="center", va="top", fontsize=7)
        ax.set_ylabel(label, fontsize=8)
    axes[0, 0].set_title(f"{title} (reference above in blue, detected below in red)")
    fig.tight_layout()
    return fig
