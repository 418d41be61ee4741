"""Wave boundaries of every annotated beat on one filtered ECG lead: QRS onset and offset,
T-wave end and whether a P wave precedes the QRS.

de Chazal et al. (IEEE TBME 2004) took these fiducial points from an automatic delineator
(ecgpuwave, Laguna et al. 1994), which works on the slope of the signal. This module follows
the same ideas with fixed, documented rules, so the features it feeds do not depend on a
program outside Python:

- QRS onset / offset: from the steepest slope on each side of the R annotation, walk away
  from the R peak until the absolute slope stays below ``QRS_SLOPE_FRACTION`` of the beat's
  steepest QRS slope for ``QUIET_ONSET_S`` before the QRS and ``QUIET_OFFSET_S`` after it (a
  pause inside a multiphasic QRS, such as the flat trough of a broad S wave in right bundle
  branch block, is not a boundary; the PR segment can be short, the ST segment and the T
  wave's slopes that follow the QRS are all below the threshold).
- T-wave end: the tangent method: the line tangent to the T wave at its steepest point after
  the T peak, crossing the isoelectric level (the signal just before the QRS onset).
- P wave: present when the stretch before the QRS onset (after the previous T wave) holds a
  peak of at least ``P_MIN_MV`` prominence and ``P_MIN_WIDTH_S`` width on the 15 Hz low-passed
  signal, of either polarity.

Input is the baseline-free signal (data.filter=median_baseline, de Chazal's own filtering)
at the record's own rate; output positions are sample indices of that signal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

QRS_SEARCH_S = 0.10          # the QRS's steepest slopes lie within 100 ms of the R annotation
QRS_ONSET_LIMIT_S = 0.20     # a QRS starts at most 200 ms before and ends at most 250 ms
QRS_OFFSET_LIMIT_S = 0.25    # after its R annotation (wide ventricular beats included)
QRS_SLOPE_FRACTION = 0.08    # P and T slopes stay below ~8 % of the QRS's steepest slope
QUIET_ONSET_S = 0.02
QUIET_OFFSET_S = 0.04
T_START_S = 0.04             # the T wave is searched from 40 ms after the QRS offset
T_LIMIT_S = 0.70             # to at most 700 ms after the R peak,
T_LIMIT_RR = 0.65            # and 65 % of the way to the next beat (its P wave comes later)
P_WINDOW_S = 0.25            # the P wave is searched up to 250 ms before the QRS onset,
P_GAP_S = 0.02               # ending 20 ms before it
P_MIN_MV = 0.05
P_MIN_WIDTH_S = 0.03
P_LOWPASS_HZ = 15.0


@dataclass
class Delineation:
    qrs_onset: np.ndarray    # [n] int64 sample index
    qrs_offset: np.ndarray   # [n] int64
    t_end: np.ndarray        # [n] int64
    p_wave: np.ndarray       # [n] bool


def _quiet_run(slope: np.ndarray, start: int, stop: int, step: int, threshold: float, run: int) -> int:
    """Walking from ``start`` towards ``stop`` (exclusive) by ``step``: the first index where
    ``slope`` stays below ``threshold`` for ``run`` samples; ``stop - step`` if none."""
    count = 0
    for k in range(start, stop, step):
        count = count + 1 if slope[k] < threshold else 0
        if count >= run:
            return k - step * (run - 1)     # the quiet stretch's end nearest the QRS
    return stop - step


def qrs_bounds(slope: np.ndarray, r: int, fs: float) -> tuple[int, int]:
    n = len(slope)
    search = max(1, int(round(QRS_SEARCH_S * fs)))
    left = slope[max(0, r - search):r + 1]
    right = slope[r:min(n, r + search + 1)]
    steepest_left = max(0, r - search) + int(np.argmax(left))
    steepest_right = r + int(np.argmax(right))
    threshold = QRS_SLOPE_FRACTION * max(left.max(), right.max())
    first = max(0, r - int(round(QRS_ONSET_LIMIT_S * fs)))
    last = min(n - 1, r + int(round(QRS_OFFSET_LIMIT_S * fs)))
    onset = _quiet_run(slope, steepest_left, first - 1, -1, threshold,
                       max(1, int(round(QUIET_ONSET_S * fs))))
    offset = _quiet_run(slope, steepest_right, last + 1, 1, threshold,
                        max(1, int(round(QUIET_OFFSET_S * fs))))
    return onset, offset


def t_wave_end(y: np.ndarray, d: np.ndarray, offset: int, r: int, next_r: int | None,
               iso: float, fs: float) -> int:
    n = len(y)
    start = min(n - 1, offset + int(round(T_START_S * fs)))
    limit = r + int(round(T_LIMIT_S * fs))
    if next_r is not None:
        limit = min(limit, r + int(round(T_LIMIT_RR * (next_r - r))))
    stop = min(n - 1, limit)
    if stop - start < 3:
        return max(offset, stop)
    peak = start + int(np.argmax(np.abs(y[start:stop + 1] - iso)))
    if peak >= stop:
        return stop
    steepest = peak + int(np.argmax(np.abs(d[peak:stop + 1])))
    if d[steepest] == 0:
        return stop
    # tangent at the steepest descent after the peak, extended to the isoelectric level
    end = steepest + (iso - y[steepest]) / d[steepest] * fs
    return int(np.clip(round(end), peak, stop))


def has_p_wave(smooth: np.ndarray, start: int, stop: int, iso: float, fs: float) -> bool:
    if stop - start < int(round(2 * P_MIN_WIDTH_S * fs)):
        return False
    seg = smooth[start:stop] - iso
    width = P_MIN_WIDTH_S * fs
    for polarity in (1.0, -1.0):
        peaks, _ = signal.find_peaks(polarity * seg, prominence=P_MIN_MV, width=width)
        if len(peaks):
            return True
    return False


def delineate(y: np.ndarray, fs: float, peaks: np.ndarray) -> Delineation:
    """Boundaries of the beats at ``peaks`` (R annotations, sample indices) on the filtered
    lead ``y`` (millivolts, sampled at ``fs``)."""
    peaks = np.asarray(peaks, dtype=np.int64)
    d = np.gradient(y) * fs                                    # mV/s
    slope = np.abs(d)
    sos = signal.butter(3, P_LOWPASS_HZ, btype="low", fs=fs, output="sos")
    smooth = signal.sosfiltfilt(sos, y)
    iso_len = max(1, int(round(0.02 * fs)))
    n = len(peaks)
    onset, offset, t_end = (np.zeros(n, dtype=np.int64) for _ in range(3))
    p_wave = np.zeros(n, dtype=bool)
    for i, r in enumerate(peaks):
        r = int(np.clip(r, 0, len(y) - 1))
        onset[i], offset[i] = qrs_bounds(slope, r, fs)
        iso = float(np.mean(y[max(0, onset[i] - iso_len):onset[i] + 1]))
        next_r = int(peaks[i + 1]) if i + 1 < n else None
        t_end[i] = t_wave_end(y, d, int(offset[i]), r, next_r, iso, fs)
        start = onset[i] - int(round(P_WINDOW_S * fs))
        if i > 0:
            start = max(start, int(t_end[i - 1]) + int(round(P_GAP_S * fs)))
        p_wave[i] = has_p_wave(smooth, max(0, start), onset[i] - int(round(P_GAP_S * fs)), iso, fs)
    return Delineation(onset, offset, t_end, p_wave)
