"""Per-record MIT-BIH preprocessing: read one lead, filter, resample, normalise, cut beats.

Everything here works on one record at a time and knows nothing about splits or caching
(data_provider/mitdb.py does that), so each step can be tested on its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import ndimage, signal

# AAMI EC57 beat classes. Annotation symbols not listed here (rhythm changes "+", noise "~",
# comments, ...) are not beats and are ignored.
CLASS_NAMES = ["N", "S", "V", "F", "Q"]
AAMI_MAP = {
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    "A": "S", "a": "S", "J": "S", "S": "S",
    "V": "V", "E": "V",
    "F": "F",
    "/": "Q", "f": "Q", "Q": "Q",
}
AAMI_INDEX = {sym: CLASS_NAMES.index(c) for sym, c in AAMI_MAP.items()}

RR_FEATURE_NAMES = ["pre_rr", "post_rr", "local_rr", "avg_rr", "pre_rr_ratio", "post_rr_ratio"]
# data.rr_normalize: none = the six features above; record / causal = pre, post and local RR
# divided by the patient's own average RR (of the whole record, or of the past window only)
RR_NORMALIZATIONS = ("none", "record", "causal")
NORMALIZED_RR_NAMES = ["pre_rr_norm", "post_rr_norm", "local_rr_norm"]

FILTERS = ("bandpass", "median_baseline", "none")
NORMALIZATIONS = ("beat_zscore", "record_zscore", "none")


@dataclass(frozen=True)
class SignalSettings:
    """Everything that changes the preprocessed arrays (and so the cache key)."""
    lead: str = "MLII"
    window_before_s: float = 0.25
    window_after_s: float = 0.45
    resample_hz: float | None = None
    filter: str = "median_baseline"
    bandpass_hz: tuple[float, float] = (0.5, 40.0)
    filter_order: int = 3
    median_ms: tuple[float, float] = (200.0, 600.0)
    median_lowpass_hz: float | None = 35.0
    normalize: str = "record_zscore"

    def __post_init__(self):
        if self.filter not in FILTERS:
            raise ValueError(f"data.filter={self.filter!r} is not known; choose one of {list(FILTERS)}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"data.normalize={self.normalize!r} is not known; "
                             f"choose one of {list(NORMALIZATIONS)}")
        if self.window_before_s < 0 or self.window_after_s < 0 or \
                self.window_before_s + self.window_after_s <= 0:
            raise ValueError("data.window_before_s and data.window_after_s must be >= 0 with a "
                             f"positive sum, got {self.window_before_s} and {self.window_after_s}")
        if self.resample_hz is not None and self.resample_hz <= 0:
            raise ValueError(f"data.resample_hz must be positive or null, got {self.resample_hz}")


@dataclass
class RecordBeats:
    x: np.ndarray        # [n_beats, L] float32
    y: np.ndarray        # [n_beats] int64 AAMI class index
    rr: np.ndarray       # [n_beats, 6] float32 (RR_FEATURE_NAMES)
    sample: np.ndarray   # [n_beats] int64 R-peak sample at the record's original rate
    symbol: np.ndarray   # [n_beats] '<U1' raw annotation symbol


def read_record(path: Path, lead: str):
    """(signal of `lead` in mV as float64, fs, annotation samples, annotation symbols)."""
    import wfdb  # imported here so other data families don't need it

    header = read_header(path)
    if lead not in header.sig_name:
        raise ValueError(f"record {path.name} has no lead {lead!r} (its leads: "
                         f"{', '.join(header.sig_name)}); records 102 and 104 have no MLII, which "
                         f"is one reason they are excluded from the standard split")
    check_signal_files(path, header)
    rec = _read_with(wfdb.rdrecord, path, ".dat", channel_names=[lead])
    ann = _read_with(wfdb.rdann, path, ".atr", "atr")
    return (rec.p_signal[:, 0].astype(np.float64), float(rec.fs),
            np.asarray(ann.sample, dtype=np.int64), np.asarray(ann.symbol))


# ----------------------------------------------------------------------------- damaged files
FIX = ("delete it and run with data.download=true to fetch it again, or get a clean copy from "
       "https://physionet.org/content/mitdb/1.0.0/")
# Bytes per sample of the WFDB storage formats (212: two 12-bit samples in 3 bytes, 310/311:
# three 10-bit samples in 4 bytes); compressed formats are left to wfdb.
BYTES_PER_SAMPLE = {"8": Fraction(1), "16": Fraction(2), "24": Fraction(3), "32": Fraction(4),
                    "61": Fraction(2), "80": Fraction(1), "160": Fraction(2),
                    "212": Fraction(3, 2), "310": Fraction(4, 3), "311": Fraction(4, 3)}
_NUMBER = r"[0-9.eE+-]+"
_FREQUENCY = re.compile(rf"{_NUMBER}(/{_NUMBER}(\({_NUMBER}\))?)?")
_FORMAT = re.compile(r"\d+(x\d+)?(:\d+)?(\+\d+)?")


def _record_line_problem(line: str) -> str | None:
    t = line.split()
    if len(t) < 2 or not t[1].isdigit():
        return "the number of signals (2nd field) is missing or not an integer"
    if len(t) > 2 and not _FREQUENCY.fullmatch(t[2]):
        return f"the sampling frequency (3rd field) '{t[2]}' is not a number"
    if len(t) > 3 and not t[3].isdigit():
        return f"the number of samples (4th field) '{t[3]}' is not an integer"
    return None


def header_problem(text: str) -> tuple[int, str] | None:
    """(line number, problem) of the first line of a WFDB header that does not parse, or
    None; wfdb itself only says 'invalid syntax' or fails with an IndexError."""
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1)
             if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        return 1, "no record line ('<record> <signals> <frequency> <samples>')"
    lineno, record = lines[0]
    problem = _record_line_problem(record)
    if problem:
        return lineno, f"record line '{record}': {problem}"
    if "/" in record.split()[0]:  # multi-segment record: segment lines, not signal lines
        return None
    n_sig = int(record.split()[1])
    signals = lines[1:1 + n_sig]
    if len(signals) < n_sig:
        last = lines[-1][0]
        return last, f"the record line says {n_sig} signals but only {len(signals)} signal line(s) follow"
    for lineno, line in signals:
        t = line.split()
        if len(t) < 2 or not _FORMAT.fullmatch(t[1]):
            return lineno, (f"signal line '{line}': expected '<file> <format> ...' with a "
                            "storage format such as 212")
    return None


def read_header(path: Path):
    """wfdb's header of record `path`, or a ValueError naming the .hea file, line and problem."""
    import wfdb

    hea = path.parent / f"{path.name}.hea"
    found = header_problem(hea.read_text(encoding="utf-8", errors="replace"))
    if found:
        lineno, problem = found
        raise ValueError(f"{hea}, line {lineno}: {problem}; the header is damaged: {FIX}.")
    return _read_with(wfdb.rdheader, path, ".hea")


def check_signal_files(path: Path, header) -> None:
    """Refuse a .dat file shorter than its header says (a truncated copy), which wfdb would
    report as a numpy broadcast error."""
    n = len(header.file_name)
    need: dict[str, Fraction] = {}
    for name, fmt, spf, offset in zip(header.file_name, header.fmt,
                                      header.samps_per_frame or [1] * n,
                                      header.byte_offset or [0] * n):
        if str(fmt) not in BYTES_PER_SAMPLE:
            return
        per_frame = BYTES_PER_SAMPLE[str(fmt)] * int(spf or 1)
        need[name] = need.get(name, Fraction(int(offset or 0))) + per_frame * int(header.sig_len)
    for name, size in need.items():
        dat = path.parent / name
        have = dat.stat().st_size
        if have < int(size):  # floor: an odd sample count of format 212 ends mid-byte
            raise ValueError(f"{dat} is truncated: {have} bytes, but {path.name}.hea says "
                             f"{header.sig_len} samples per signal, which take {int(size)} "
                             f"bytes; {FIX}.")


def _read_with(reader, path: Path, suffix: str, *args, **kwargs):
    """Call a wfdb reader; its errors on a damaged file become one message naming the file."""
    try:
        return reader(str(path), *args, **kwargs)
    except FileNotFoundError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OSError, EOFError) as e:
        raise ValueError(f"{path.parent / (path.name + suffix)} could not be read "
                         f"({type(e).__name__}: {e}); the file is damaged: {FIX}.") from e


def _odd(n: float) -> int:
    n = max(1, int(round(n)))
    return n if n % 2 else n + 1


def filter_signal(x: np.ndarray, fs: float, s: SignalSettings) -> np.ndarray:
    """Zero-phase filtering (no shift of the R peak relative to its annotation)."""
    if s.filter == "none":
        return x
    nyq = fs / 2
    if s.filter == "bandpass":
        lo, hi = s.bandpass_hz
        if not 0 < lo < hi < nyq:
            raise ValueError(f"data.bandpass_hz={list(s.bandpass_hz)} must satisfy 0 < low < high "
                             f"< {nyq} Hz (half the sampling rate)")
        sos = signal.butter(s.filter_order, [lo, hi], btype="band", fs=fs, output="sos")
        return signal.sosfiltfilt(sos, x)
    # median_baseline: de Chazal et al. 2004 estimate the baseline with a 200 ms median filter
    # (removes QRS and P waves) followed by a 600 ms one (removes T waves) and subtract it,
    # then low-pass at 35 Hz (they used a 12-tap FIR; a zero-phase Butterworth here).
    w1, w2 = (_odd(ms / 1000 * fs) for ms in s.median_ms)
    baseline = ndimage.median_filter(ndimage.median_filter(x, w1, mode="nearest"), w2, mode="nearest")
    y = x - baseline
    if s.median_lowpass_hz is not None:
        if not 0 < s.median_lowpass_hz < nyq:
            raise ValueError(f"data.median_lowpass_hz={s.median_lowpass_hz} must be in (0, {nyq}) "
                             "Hz or null")
        sos = signal.butter(s.filter_order, s.median_lowpass_hz, btype="low", fs=fs, output="sos")
        y = signal.sosfiltfilt(sos, y)
    return y


def resample(x: np.ndarray, fs: float, target: float | None) -> tuple[np.ndarray, float]:
    if target is None or float(target) == fs:
        return x, fs
    ratio = (Fraction(target).limit_denominator(1000) / Fraction(fs).limit_denominator(1000))
    return signal.resample_poly(x, ratio.numerator, ratio.denominator), float(target)


def zscore(x: np.ndarray, axis=None) -> np.ndarray:
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / np.maximum(std, 1e-6)  # floor: a flat segment maps to zeros, not inf


def window_lengths(fs: float, s: SignalSettings) -> tuple[int, int]:
    return int(round(s.window_before_s * fs)), int(round(s.window_after_s * fs))


def cut_beats(x: np.ndarray, peaks: np.ndarray, before: int, after: int) -> np.ndarray:
    """Windows x[p - before : p + after] for every peak; the record edges are padded with the
    edge value so no beat is ever dropped."""
    padded = np.pad(x, (before, after), mode="edge")
    idx = peaks[:, None] + np.arange(before + after)[None, :]  # padded offset cancels `before`
    return padded[idx]


def rr_features(peaks: np.ndarray, fs: float) -> np.ndarray:
    """de Chazal et al. 2004 RR-interval features, in seconds, for the beats of one record.

    pre_rr: time since the previous beat; post_rr: time to the next; local_rr: mean of the ten
    RR intervals surrounding the beat (5 before, 5 after, fewer at the record edges); avg_rr:
    mean RR of the whole record; and pre/avg, post/avg, which put each beat's rhythm relative to
    the patient's own rate (what makes the features transfer between patients). The first
    beat's pre_rr is its post_rr and the last beat's post_rr its pre_rr (no neighbour there).
    """
    n = len(peaks)
    if n < 2:
        out = np.zeros((n, 6), dtype=np.float32)
        out[:, 4:] = 1.0
        return out
    rr = np.diff(peaks).astype(np.float64) / fs           # rr[k]: beat k -> k+1
    pre = np.concatenate([rr[:1], rr])
    post = np.concatenate([rr, rr[-1:]])
    csum = np.concatenate([[0.0], np.cumsum(rr)])
    i = np.arange(n)
    lo, hi = np.clip(i - 5, 0, n - 1), np.clip(i + 5, 1, n - 1)  # rr indices [i-5, i+5)
    local = (csum[hi] - csum[lo]) / (hi - lo)
    avg = np.full(n, rr.mean())
    return np.stack([pre, post, local, avg, pre / avg, post / avg], axis=1).astype(np.float32)


def normalize_rr(rr: np.ndarray, record: np.ndarray, mode: str,
                 causal_seconds: float = 300.0) -> np.ndarray:
    """Per-patient RR features from the six of ``rr_features`` (rows of several records,
    ``record`` naming each row's record, rows of a record in time order).

    record: pre, post and local RR over the record's mean RR (the whole recording, as
    de Chazal et al.'s average RR). causal: over the mean of the pre-RR intervals that ended
    within the last ``causal_seconds`` up to this beat, what a monitor running live knows
    (the first beats of a record use the few intervals seen so far)."""
    if mode not in RR_NORMALIZATIONS:
        raise ValueError(f"data.rr_normalize={mode!r} is not known; choose one of "
                         f"{', '.join(RR_NORMALIZATIONS)}")
    if mode == "none":
        return rr
    if mode == "record":
        return (rr[:, :3] / rr[:, 3:4]).astype(np.float32)
    out = np.empty((len(rr), 3), dtype=np.float32)
    for r in np.unique(record):
        rows = np.flatnonzero(record == r)
        pre = rr[rows, 0].astype(np.float64)
        t = np.cumsum(pre) - pre[0]                 # each beat's time from the record's first
        csum = np.concatenate([[0.0], np.cumsum(pre)])
        first = np.searchsorted(t, t - causal_seconds, side="left")   # oldest beat in the window
        i = np.arange(len(rows))
        avg = (csum[i + 1] - csum[first]) / (i + 1 - first)
        out[rows] = rr[rows, :3] / avg[:, None]
    return out


def preprocess_signal(raw: np.ndarray, fs: float, s: SignalSettings) -> tuple[np.ndarray, float]:
    """A record's lead filtered, resampled and (record_zscore) normalised: (signal, its rate)."""
    sig, fs_out = resample(filter_signal(raw, fs, s), fs, s.resample_hz)
    return (zscore(sig) if s.normalize == "record_zscore" else sig), fs_out


def beats_at(sig: np.ndarray, fs_out: float, samples: np.ndarray, fs: float,
             s: SignalSettings) -> np.ndarray:
    """Beat windows [n, L] float32 of a preprocessed signal around R peaks given at the record's
    own rate ``fs`` (the annotations', or a detector's)."""
    peaks = np.clip(np.round(samples * fs_out / fs).astype(np.int64), 0, len(sig) - 1)
    before, after = window_lengths(fs_out, s)
    beats = cut_beats(sig, peaks, before, after)
    if s.normalize == "beat_zscore":
        beats = zscore(beats, axis=1)
    return beats.astype(np.float32)


def process_record(path: Path, s: SignalSettings, window_seconds: float | None = None):
    """Beats of one record (and, for `window_seconds`, its non-overlapping long windows)."""
    raw, fs, samples, symbols = read_record(path, s.lead)
    is_beat = np.array([sym in AAMI_INDEX for sym in symbols], dtype=bool)
    samples, symbols = samples[is_beat], symbols[is_beat]
    y = np.array([AAMI_INDEX[sym] for sym in symbols], dtype=np.int64)

    sig, fs_out = preprocess_signal(raw, fs, s)
    out = RecordBeats(x=beats_at(sig, fs_out, samples, fs, s), y=y, rr=rr_features(samples, fs),
                      sample=samples, symbol=symbols.astype("<U1"))

    windows = None
    if window_seconds is not None:
        w = int(round(window_seconds * fs_out))
        if w < 1:
            raise ValueError(f"data.ssl_window_seconds={window_seconds} is shorter than one sample")
        n = len(sig) // w  # the incomplete tail window is left out (unlabelled data, no beat lost)
        windows = sig[: n * w].reshape(n, w)
        if s.normalize == "beat_zscore":  # per-unit z-score, like the beats
            windows = zscore(windows, axis=1)
        windows = windows.astype(np.float32)
    return out, windows, fs_out
