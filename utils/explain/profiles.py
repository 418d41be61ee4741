"""Per-class average saliency profiles: where in the beat each class's evidence lies."""
from __future__ import annotations

import numpy as np


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Scale each map [N, T] to [0, 1] (min-max per sample) so every sample weighs the same
    in an average; a constant map becomes all zeros."""
    maps = np.asarray(maps, dtype=np.float64)
    lo = maps.min(axis=1, keepdims=True)
    span = maps.max(axis=1, keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1.0), 0.0)


def class_profiles(maps: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean normalised map of the samples of each class: [num_classes, T]; NaN rows for
    classes without samples."""
    norm = normalize_maps(maps)
    labels = np.asarray(labels).reshape(-1)
    out = np.full((num_classes, norm.shape[1]), np.nan)
    for c in range(num_classes):
        if (labels == c).any():
            out[c] = norm[labels == c].mean(axis=0)
    return out
