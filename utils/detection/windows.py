"""Cutting a record into overlapping fixed-length windows and merging per-window detections back
into one annotation stream for the whole record.

A detector sees windows of W samples whose starts may overlap, so a beat near a window edge is
seen by two windows (and may be half cut off in one of them). Each sample of the record is
"owned" by exactly one window (the one in which it lies furthest from an edge), and a detection
is kept only by the window that owns it: every beat is counted once, none twice, none dropped.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Starts 0, stride, 2*stride, ... of the windows that fit in the record, plus one window
    ending exactly at the record's end when the last regular one stops short of it, so every
    sample is covered. A record shorter than one window gets the single start 0 (the caller pads).
    """
    if window <= 0:
        raise ValueError(f"window length must be positive, got {window} samples; "
                         "set data.window_seconds > 0")
    if stride <= 0 or stride > window:
        raise ValueError(f"window stride must be in (0, window] = (0, {window}] samples, got "
                         f"{stride}: a stride above the window leaves samples no window sees; "
                         "set data.stride_seconds <= data.window_seconds and > 0")
    if length <= 0:
        raise ValueError(f"record length must be positive, got {length} samples")
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
    if starts[-1] + window < length:                 # the tail the regular grid misses
        starts = np.append(starts, np.int64(length - window))
    return starts


def ownership(starts: np.ndarray, window: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): window i owns samples [lo[i], hi[i]). Consecutive windows a, b split at the
    middle of their overlap, floor((start_b + start_a + window) / 2), which is start_b when they
    do not overlap; the first window owns from 0, the last up to `length`. The ranges tile
    [0, length) and each lies inside its window."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or len(starts) == 0:
        raise ValueError(f"window starts must be a non-empty 1-D array, got shape {starts.shape}")
    if np.any(np.diff(starts) <= 0):
        raise ValueError("window starts must be strictly increasing; build them with window_starts")
    if np.any(np.diff(starts) > window) or starts[0] != 0 or \
            (len(starts) > 1 and starts[-1] + window < length):
        raise ValueError(f"windows of {window} samples at these starts leave parts of the "
                         f"{length}-sample record uncovered; build them with window_starts")
    bounds = (starts[1:] + starts[:-1] + window) // 2
    lo = np.concatenate([[0], bounds]).astype(np.int64)
    hi = np.concatenate([bounds, [length]]).astype(np.int64)
    return lo, hi


def merge_windows(starts: np.ndarray, window: int, length: int,
                  positions: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                  scores: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One record's detections from per-window ones.

    positions[i] (samples, relative to starts[i]; float or int), labels[i] and scores[i] are the
    detections of window i. A detection is kept only when start + position, rounded to the
    nearest sample, lies in the range window i owns (see `ownership`). The owned ranges tile the
    record, so a beat seen by two overlapping windows is kept once, a beat on a window edge is
    kept by the window where it is furthest from the edge, and detections in the padding past
    the record's end are dropped: no beat is counted twice or lost at window edges.

    Returns (positions int64, labels int64, scores float64), sorted by absolute position.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if not len(positions) == len(labels) == len(scores) == len(starts):
        raise ValueError(f"need one positions/labels/scores array per window: {len(starts)} "
                         f"windows, got {len(positions)}/{len(labels)}/{len(scores)}")
    lo, hi = ownership(starts, window, length)
    kept_pos, kept_lab, kept_sco = [], [], []
    for i, (pos, lab, sco) in enumerate(zip(positions, labels, scores)):
        pos = np.asarray(pos, dtype=np.float64).reshape(-1)
        lab = np.asarray(lab).reshape(-1)
        sco = np.asarray(sco, dtype=np.float64).reshape(-1)
        if not len(pos) == len(lab) == len(sco):
            raise ValueError(f"window {i}: {len(pos)} positions, {len(lab)} labels and "
                             f"{len(sco)} scores; each detection needs all three")
        absolute = np.rint(starts[i] + pos).astype(np.int64)
        own = (absolute >= lo[i]) & (absolute < hi[i])
        kept_pos.append(absolute[own])
        kept_lab.append(lab[own].astype(np.int64))
        kept_sco.append(sco[own])
    pos = np.concatenate(kept_pos) if kept_pos else np.empty(0, dtype=np.int64)
    lab = np.concatenate(kept_lab) if kept_lab else np.empty(0, dtype=np.int64)
    sco = np.concatenate(kept_sco) if kept_sco else np.empty(0, dtype=np.float64)
    order = np.argsort(pos, kind="stable")
    return pos[order].astype(np.int64), lab[order].astype(np.int64), sco[order].astype(np.float64)
