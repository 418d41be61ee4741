"""de Chazal, O'Dwyer & Reilly (IEEE TBME 2004) heartbeat features of MIT-BIH records, cached.

Per beat, in this order (DECHAZAL_FEATURE_NAMES):

- RR intervals (s): pre-RR, post-RR, average RR (mean RR of the whole recording) and local
  average RR (mean of the ten RR intervals around the beat): mitdb_signal.rr_features.
- Heartbeat intervals: QRS duration (QRS onset to offset, s), T-wave duration (QRS offset to
  T-wave end, s) and a P-wave flag (1 present, 0 absent), from the delineation of the first
  lead (mitdb_delineation.py).
- Morphology, for each of the two leads (``a``: data.lead, MLII; ``b``: the record's other
  lead, V1 in most records): the QRS as 10 samples evenly spaced from 50 ms before to 100 ms
  after the fiducial point (60 Hz), and the T wave as 9 samples evenly spaced from 150 ms to
  500 ms after it. The fiducial point is the database's beat annotation (its R peak).

Signals are filtered as data.filter says (de Chazal's: 200 + 600 ms median baseline removal,
35 Hz low-pass) at the record's own 360 Hz, in millivolts: neither data.resample_hz nor
data.normalize apply here. The features of a record list are cached under paths.cache_dir,
keyed by the filter settings, the record list and the sha256 of every input file, like the
beats (mitdb_cache.py).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from . import mitdb_cache
from .mitdb_delineation import delineate
from .mitdb_signal import AAMI_INDEX, SignalSettings, _read_with, filter_signal, read_header, rr_features

log = logging.getLogger(__name__)

FEATURE_VERSION = 1          # bump when this module changes its output
QRS_WINDOW_S = (-0.050, 0.100)
QRS_SAMPLES = 10
T_WINDOW_S = (0.150, 0.500)
T_SAMPLES = 9
LEADS = ("a", "b")

INTERVAL_NAMES = ["pre_rr", "post_rr", "avg_rr", "local_rr", "qrs_duration", "t_duration", "p_wave"]
MORPHOLOGY_NAMES = {lead: [f"{lead}_qrs_{i}" for i in range(QRS_SAMPLES)] +
                    [f"{lead}_t_{i}" for i in range(T_SAMPLES)] for lead in LEADS}
DECHAZAL_FEATURE_NAMES = INTERVAL_NAMES + MORPHOLOGY_NAMES["a"] + MORPHOLOGY_NAMES["b"]


def read_two_leads(path: Path, lead: str):
    """(signals [2, n] in mV with ``lead`` first, fs, annotation samples, symbols)."""
    import wfdb  # imported here so other data families don't need it

    header = read_header(path)
    if lead not in header.sig_name or len(header.sig_name) < 2:
        raise ValueError(f"record {path.name} has leads {header.sig_name}; de Chazal's features "
                         f"need {lead!r} and a second lead")
    other = next(name for name in header.sig_name if name != lead)
    rec = _read_with(wfdb.rdrecord, path, ".dat", channel_names=[lead, other])
    ann = _read_with(wfdb.rdann, path, ".atr", "atr")
    return (rec.p_signal.T.astype(np.float64), float(rec.fs),
            np.asarray(ann.sample, dtype=np.int64), np.asarray(ann.symbol))


def sample_at(y: np.ndarray, peaks: np.ndarray, fs: float, window_s: tuple[float, float],
              count: int) -> np.ndarray:
    """``count`` samples of ``y`` evenly spaced over ``window_s`` around every peak (linear
    interpolation between the signal's samples; the record edges hold their edge value)."""
    offsets = np.linspace(window_s[0], window_s[1], count) * fs
    return np.interp(peaks[:, None] + offsets[None, :], np.arange(len(y)), y)


def record_features(path: Path, settings: SignalSettings) -> tuple[np.ndarray, np.ndarray]:
    """(features [n_beats, 45] float32, R-peak samples [n_beats]) of one record's beats (the
    same beats, in the same order, as mitdb_signal.process_record)."""
    leads, fs, samples, symbols = read_two_leads(path, settings.lead)
    is_beat = np.array([sym in AAMI_INDEX for sym in symbols], dtype=bool)
    peaks = samples[is_beat]
    filtered = [filter_signal(x, fs, settings) for x in leads]
    bounds = delineate(filtered[0], fs, peaks)
    rr = rr_features(peaks, fs)                    # pre, post, local, avg, pre/avg, post/avg
    intervals = np.column_stack([
        rr[:, 0], rr[:, 1], rr[:, 3], rr[:, 2],
        (bounds.qrs_offset - bounds.qrs_onset) / fs,
        (bounds.t_end - bounds.qrs_offset) / fs,
        bounds.p_wave.astype(np.float64)])
    morphology = [np.hstack([sample_at(y, peaks, fs, QRS_WINDOW_S, QRS_SAMPLES),
                             sample_at(y, peaks, fs, T_WINDOW_S, T_SAMPLES)]) for y in filtered]
    return np.hstack([intervals, *morphology]).astype(np.float32), peaks


def load_features(cfg, folder: Path, records, settings: SignalSettings,
                  digests: dict[str, str]) -> dict[str, np.ndarray]:
    """{"features", "sample", "record"} of every beat of ``records`` (sorted), from the cache
    when its key matches."""
    records = sorted(int(r) for r in records)
    cache = mitdb_cache.folder(OmegaConf.select(cfg, "paths.cache_dir", default=None))
    path = None
    if cache is not None:
        key = mitdb_cache.cache_key(settings, records, digests,
                                    {"features": "dechazal2004", "version": FEATURE_VERSION})
        path = cache / f"dechazal-{key}.npz"
        cached = mitdb_cache.load(path)
        if cached is not None:
            return cached
    t0 = time.time()
    parts = [(r, *record_features(folder / str(r), settings)) for r in records]
    arrays = {"features": np.concatenate([f for _, f, _ in parts]),
              "sample": np.concatenate([s for _, _, s in parts]),
              "record": np.concatenate([np.full(len(s), r, dtype=np.int64) for r, _, s in parts])}
    log.info("MIT-BIH: de Chazal features of %d records in %.1f s", len(records), time.time() - t0)
    if path is not None:
        mitdb_cache.save(path, arrays)
    return arrays
