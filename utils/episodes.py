"""Episodes of a labelled time axis (e.g. the rhythm of each step of an ECG window) and the
prompts a promptable segmenter gets for them, as SAM (Kirillov et al. 2023) simulates them:
a point inside the episode or its interval, then corrective points in the error region.

Positions are steps of the window; models receive them as fractions (step + 0.5) / W.
"""
from __future__ import annotations

import numpy as np


def episodes(labels: np.ndarray, min_steps: int) -> list[tuple[int, int, int]]:
    """Maximal runs (start, end exclusive, label) of one non-negative label lasting at least
    ``min_steps`` steps; steps labelled < 0 (nothing noted) belong to no episode."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(labels)]])
    return [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends)
            if labels[s] >= 0 and e - s >= min_steps]


def pick_episode(found: list[tuple[int, int, int]], rng: np.random.Generator):
    """One episode, its label drawn uniformly among the labels present (rare rhythms are
    prompted as often as the common one), then uniformly among that label's episodes."""
    labels = sorted({e[2] for e in found})
    label = labels[rng.integers(len(labels))]
    mine = [e for e in found if e[2] == label]
    return mine[rng.integers(len(mine))]


def jittered_interval(start: int, end: int, length: int, rng: np.random.Generator,
                      noise: float = 0.1) -> tuple[float, float]:
    """SAM's noisy box: each edge moved by a normal draw of ``noise`` x the episode's length
    (at most twice that), kept inside the window."""
    span = end - start
    lo, hi = (np.clip(rng.normal(0.0, noise * span, size=2), -2 * noise * span, 2 * noise * span))
    a, b = np.clip([start + lo, end + hi], 0, length)
    return float(min(a, b)), float(max(a, b))


def largest_error_centre(pred: np.ndarray, target: np.ndarray,
                         valid: np.ndarray | None = None) -> tuple[int, int] | None:
    """(step, label) of the next corrective click on a 1-D mask, as interactive segmentation is
    evaluated (the point farthest from the boundary of the largest error region: in 1-D the
    centre of the longest run of wrong steps); label 1 where the target was missed, 0 where the
    prediction spills over. None when the prediction is exact."""
    wrong = pred != target
    if valid is not None:
        wrong &= valid
    if not wrong.any():
        return None
    runs = episodes(np.where(wrong, 1, -1), 1)           # the runs of wrong steps
    start, end, _ = max(runs, key=lambda r: (r[1] - r[0], -r[0]))
    step = (start + end - 1) // 2
    return step, int(target[step])


def random_error_point(pred: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                       valid: np.ndarray | None = None) -> tuple[int, int] | None:
    """(step, label) drawn uniformly from the error region, as SAM's training rounds do."""
    wrong = pred != target
    if valid is not None:
        wrong &= valid
    steps = np.flatnonzero(wrong)
    if len(steps) == 0:
        return None
    step = int(steps[rng.integers(len(steps))])
    return step, int(target[step])
