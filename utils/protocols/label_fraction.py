"""Few-label studies: a stratified, seeded subset of the labelled training split."""
from __future__ import annotations

import numpy as np


def stratified_subset(y, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of about ``fraction`` of the samples of every class of ``y``
    (rounded, at least one per class), drawn with numpy's generator seeded by ``seed``.
    fraction 1.0 returns every index."""
    y = np.asarray(y)
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must lie in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        n = max(1, int(round(fraction * len(members))))
        keep.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(keep))
