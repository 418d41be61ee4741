"""`data=ecg_stream`: the continuous MIT-BIH recordings, both leads, cut into fixed windows whose
targets are the annotated beats inside them (R-peak position and AAMI class), for detectors that
find beats without the reference annotations.

A record is read whole (both signals, MLII first where the record has it), filtered and resampled
as `data=ecg` does (mitdb_signal.py: the same settings), and z-scored per lead over the record.
Windows of ``data.window_seconds`` start every ``data.stride_seconds`` on the training records
and every ``data.eval_stride_seconds`` on the validation and test records, plus one window ending
at the record's end (utils/detection/windows.py), so every sample is covered and overlapping
predictions can be merged into one annotation stream per record. The split is data=ecg's
(DS1 train / held-out DS1 records for validation / DS2 to test).

A window's targets are padded to the most beats any window holds: "beat_pos" [M] (R peak as a
fraction of the window, in [0, 1)), "beat_cls" [M] (AAMI index, -1 = no beat). For evaluation
the bundle's meta carries each record's reference beats at the record's own rate ("reference":
record -> (samples, classes), "record_fs") and its length at the stream's rate. Every window
also carries the rhythm of each step, "rhythm" [W] (index into RHYTHM_NAMES, from the
annotations' rhythm notes; -1 where none is noted), the episodes task=segment prompts for.
The filtered signals are cached under paths.cache_dir, keyed by the settings and the files' sha256.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from utils.detection.windows import window_starts

from . import mitdb_cache
from .base import ArrayDataset, DataBundle
from .mitdb import _get, ready_records, settings_from_cfg, shared_patients, split_records
from .mitdb_signal import (AAMI_INDEX, CLASS_NAMES, SignalSettings, _read_with, check_signal_files,
                           filter_signal, read_header, resample, zscore)

log = logging.getLogger(__name__)

FIRST_LEAD = "MLII"
# The rhythm notes of the MIT-BIH annotations ("+" annotations, aux note "(AFIB" ...): normal
# sinus, atrial fibrillation / flutter, ventricular bigeminy / trigeminy / tachycardia /
# flutter, supraventricular tachyarrhythmia, nodal, idioventricular, sinus bradycardia,
# atrial bigeminy, 2nd degree block, pre-excitation, paced.
RHYTHM_NAMES = ["N", "AFIB", "AFL", "B", "T", "VT", "VFL", "SVTA", "NOD", "IVR", "SBR", "AB",
                "BII", "PREX", "P"]


def read_leads(path: Path) -> dict:
    """One record as read: "signal" [n, leads] in mV with MLII first where the record has it
    (record 114 stores it second), "leads", "fs", the reference beats ("sample", AAMI "cls")
    and the rhythm notes ("rhythm_sample", "rhythm"), all from one read of each file."""
    import wfdb

    header = read_header(path)
    check_signal_files(path, header)
    rec = _read_with(wfdb.rdrecord, path, ".dat")
    ann = _read_with(wfdb.rdann, path, ".atr", "atr")
    order = sorted(range(len(rec.sig_name)), key=lambda i: rec.sig_name[i] != FIRST_LEAD)
    symbols = np.asarray(ann.symbol)
    is_beat = np.array([s in AAMI_INDEX for s in symbols], dtype=bool)
    change, rhythm = rhythm_changes(ann)
    return {"signal": rec.p_signal[:, order].astype(np.float64),
            "leads": [rec.sig_name[i] for i in order], "fs": float(rec.fs),
            "sample": np.asarray(ann.sample, dtype=np.int64)[is_beat],
            "cls": np.array([AAMI_INDEX[s] for s in symbols[is_beat]], dtype=np.int64),
            "rhythm_sample": change, "rhythm": rhythm}


def rhythm_changes(ann) -> tuple[np.ndarray, np.ndarray]:
    """(sample, rhythm index) of every rhythm note of a wfdb annotation; a rhythm holds until
    the next note. Notes outside RHYTHM_NAMES are kept as -1 (unknown), so the previous rhythm
    ends."""
    notes = [(int(sample), (note or "").strip("\x00 ").lstrip("("))
             for sample, symbol, note in zip(ann.sample, ann.symbol, ann.aux_note) if symbol == "+"]
    return (np.array([n[0] for n in notes], dtype=np.int64),
            np.array([RHYTHM_NAMES.index(n[1]) if n[1] in RHYTHM_NAMES else -1 for n in notes],
                     dtype=np.int64))


def rhythm_at(steps: np.ndarray, change_steps: np.ndarray, rhythms: np.ndarray) -> np.ndarray:
    """The rhythm index at each step (-1 before the first note)."""
    i = np.searchsorted(change_steps, steps, side="right") - 1
    return np.where(i >= 0, rhythms[np.maximum(i, 0)], -1).astype(np.int8)


def process_stream(path: Path, s: SignalSettings) -> dict:
    """One record's filtered, resampled, per-lead z-scored signals and its reference beats and
    rhythm notes (at the record's own rate)."""
    record = read_leads(path)
    columns = []
    for lead in range(record["signal"].shape[1]):
        sig, fs_out = resample(filter_signal(record["signal"][:, lead], record["fs"], s),
                               record["fs"], s.resample_hz)
        columns.append(zscore(sig) if s.normalize != "none" else sig)
    return {**record, "signal": np.stack(columns, axis=1).astype(np.float32), "fs_out": fs_out}


def _preprocess(folder: Path, records, s: SignalSettings) -> dict:
    parts = [process_stream(folder / str(r), s) for r in records]
    return {
        "signal": np.concatenate([p["signal"] for p in parts]),
        "length": np.array([len(p["signal"]) for p in parts], dtype=np.int64),
        "record": np.array(records, dtype=np.int64),
        "record_fs": np.array([p["fs"] for p in parts], dtype=np.float64),
        "fs_out": np.asarray(parts[0]["fs_out"], dtype=np.float64),
        "n_beats": np.array([len(p["sample"]) for p in parts], dtype=np.int64),
        "sample": np.concatenate([p["sample"] for p in parts]),
        "cls": np.concatenate([p["cls"] for p in parts]),
        "leads": np.array([",".join(p["leads"]) for p in parts]),
        "n_rhythm": np.array([len(p["rhythm"]) for p in parts], dtype=np.int64),
        "rhythm_sample": np.concatenate([p["rhythm_sample"] for p in parts]),
        "rhythm": np.concatenate([p["rhythm"] for p in parts]),
    }


def load_streams(cfg, folder: Path, records, s: SignalSettings, digests: dict[str, str]) -> dict:
    records = sorted(int(r) for r in records)
    cache = mitdb_cache.folder(OmegaConf.select(cfg, "paths.cache_dir", default=None))
    path = None
    if cache is not None:
        key = mitdb_cache.cache_key(s, records, digests, {"stream": "all leads, rhythms"})
        path = cache / f"stream-{key}.npz"
        cached = mitdb_cache.load(path)
        if cached is not None:
            return cached
    t0 = time.time()
    arrays = _preprocess(folder, records, s)
    log.info("MIT-BIH streams: preprocessed %d records in %.1f s", len(records), time.time() - t0)
    if path is not None:
        mitdb_cache.save(path, arrays)
    return arrays


def _records(a: dict) -> dict[int, dict]:
    """Per record: its signal (a view), reference beats and rates."""
    ends, beat_ends = np.cumsum(a["length"]), np.cumsum(a["n_beats"])
    rhythm_ends = np.cumsum(a["n_rhythm"])
    out = {}
    for i, r in enumerate(a["record"].tolist()):
        lo, blo = ends[i] - a["length"][i], beat_ends[i] - a["n_beats"][i]
        rlo = rhythm_ends[i] - a["n_rhythm"][i]
        out[r] = {"signal": a["signal"][lo:ends[i]], "sample": a["sample"][blo:beat_ends[i]],
                  "cls": a["cls"][blo:beat_ends[i]], "fs": float(a["record_fs"][i]),
                  "rhythm_sample": a["rhythm_sample"][rlo:rhythm_ends[i]],
                  "rhythm": a["rhythm"][rlo:rhythm_ends[i]]}
    return out


def window_dataset(streams: dict[int, dict], records, window: int, stride: int,
                   fs_out: float) -> ArrayDataset:
    """The windows of ``records`` with their beats as padded targets and the rhythm of every
    step ("rhythm" [W] int8, -1 = none noted; past a record's end the last rhythm holds)."""
    xs, rec_ids, starts, beats, rhythms = [], [], [], [], []
    for r in records:
        st = streams[r]
        sig = st["signal"]
        peaks = np.round(st["sample"] * fs_out / st["fs"]).astype(np.int64)
        changes = np.round(st["rhythm_sample"] * fs_out / st["fs"]).astype(np.int64)
        if len(sig) < window:          # a short record: padded with its last value
            sig = np.pad(sig, ((0, window - len(sig)), (0, 0)), mode="edge")
        for start in window_starts(len(st["signal"]), window, stride):
            inside = (peaks >= start) & (peaks < start + window)
            xs.append(sig[start:start + window])
            rec_ids.append(r)
            starts.append(start)
            beats.append(((peaks[inside] - start) / window, st["cls"][inside]))
            rhythms.append(rhythm_at(np.arange(start, start + window), changes, st["rhythm"]))
    most = max([len(b[0]) for b in beats] + [1])
    pos = np.zeros((len(beats), most), dtype=np.float32)
    cls = np.full((len(beats), most), -1, dtype=np.int64)
    for i, (p, c) in enumerate(beats):
        pos[i, :len(p)], cls[i, :len(c)] = p, c
    return ArrayDataset(x=np.stack(xs), beat_pos=pos, beat_cls=cls, rhythm=np.stack(rhythms),
                        record=np.array(rec_ids, dtype=np.int64),
                        start=np.array(starts, dtype=np.int64),
                        index=np.arange(len(xs), dtype=np.int64))


def _seconds(d, key: str, default: float, fs: float) -> int:
    value = float(_get(d, key, default))
    steps = int(round(value * fs))
    if steps < 1:
        raise ValueError(f"data.{key}={value} is shorter than one sample at {fs} Hz")
    return steps


def build(cfg) -> DataBundle:
    d = cfg.data
    settings = replace(settings_from_cfg(d), lead=FIRST_LEAD)
    recs = split_records(d)
    folder, all_records, digests = ready_records(cfg, recs)
    a = load_streams(cfg, folder, all_records, settings, digests)
    fs_out = float(a["fs_out"])
    streams = _records(a)
    window = _seconds(d, "window_seconds", 10.0, fs_out)
    strides = {"train": _seconds(d, "stride_seconds", 5.0, fs_out)}
    strides["val"] = strides["test"] = _seconds(d, "eval_stride_seconds", 5.0, fs_out)
    splits = {name: window_dataset(streams, r, window, strides[name], fs_out)
              for name, r in recs.items()}
    n_leads = int(a["signal"].shape[1])
    meta = {
        "enc_in": n_leads, "in_channels": n_leads, "seq_len": window, "num_classes": len(CLASS_NAMES),
        "class_names": list(CLASS_NAMES), "rhythm_names": list(RHYTHM_NAMES), "fs": fs_out,
        "window": window,
        "eval_stride": strides["test"], "records": {k: list(v) for k, v in recs.items()},
        "shared_patients": shared_patients(recs),
        "leads": {int(r): str(lead) for r, lead in zip(a["record"], a["leads"])},
        "record_length": {r: int(len(st["signal"])) for r, st in streams.items()},
        "record_fs": {r: st["fs"] for r, st in streams.items()},
        "reference": {r: (st["sample"], st["cls"]) for r, st in streams.items()},
    }
    return DataBundle(splits=splits, meta=meta)
