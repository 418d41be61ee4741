"""Beat-by-beat comparison of detected beats with reference annotations, as ANSI/AAMI EC57 and
WFDB's `bxb` do it: a detection matches a reference beat within a fixed window (150 ms by
default), gross detection is scored by sensitivity (Se) and positive predictivity (+P), and the
beat classes by a confusion matrix over the matched pairs plus the unmatched beats of each class.

The pairing itself is WFDB's (`wfdb.processing.compare_annotations`), so the numbers are those of
the reference implementation rather than of a private matcher.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from wfdb.processing import compare_annotations

N_CLASSES = 5   # AAMI EC57 classes N, S, V, F, Q


def _beats(samples, labels, name: str, start: float, n_classes: int):
    """Samples and labels as int64 arrays, sorted by sample (WFDB's matcher needs increasing
    samples), without the beats before `start`."""
    samples = np.asarray(samples).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if len(samples) != len(labels):
        raise ValueError(f"{name}: {len(samples)} samples but {len(labels)} labels; "
                         "give one label per beat")
    if len(samples) and np.any(samples != np.round(samples)):
        raise ValueError(f"{name}: beat positions must be whole sample numbers; round them first")
    samples = samples.astype(np.int64)
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name}: labels must be class indices in [0, {n_classes}), got "
                         f"{labels.min()}..{labels.max()}; map annotation symbols with AAMI_INDEX")
    keep = samples >= start
    samples, labels = samples[keep], labels[keep]
    order = np.argsort(samples, kind="stable")
    return samples[order], labels[order]


def compare_record(ref_samples, ref_labels, test_samples, test_labels, fs: float,
                   match_seconds: float = 0.15, skip_seconds: float = 0.0,
                   n_classes: int = N_CLASSES) -> dict:
    """Compare one record's detected beats with its reference beats.

    Samples are integers at rate `fs`. Reference and test beats before `skip_seconds` are removed
    first (EC57 lets a detector learn for the first 5 min; the caller chooses). A test beat
    matches a reference beat closer than round(match_seconds * fs) samples.

    Returns tp (matched reference beats), fn (missed reference beats), fp (extra detections),
    `confusion` [n_classes, n_classes] int64 counts of matched pairs [reference class, predicted
    class], `missed` [n_classes] unmatched reference beats per reference class and `extra`
    [n_classes] unmatched test beats per predicted class.
    """
    if fs <= 0:
        raise ValueError(f"sampling rate must be positive, got fs={fs}")
    if match_seconds <= 0:
        raise ValueError(f"match window must be positive, got match_seconds={match_seconds}")
    start = skip_seconds * fs
    ref, ref_lab = _beats(ref_samples, ref_labels, "reference beats", start, n_classes)
    test, test_lab = _beats(test_samples, test_labels, "test beats", start, n_classes)
    window_width = int(round(match_seconds * fs))

    if len(ref) and len(test):
        comparison = compare_annotations(ref, test, window_width)
        ref_matched = np.asarray(comparison.matched_ref_inds, dtype=np.int64)
        test_matched = np.asarray(comparison.matched_test_inds, dtype=np.int64)
        ref_unmatched = np.asarray(comparison.unmatched_ref_inds, dtype=np.int64)
        test_unmatched = np.asarray(comparison.unmatched_test_inds, dtype=np.int64)
        tp, fn, fp = int(comparison.tp), int(comparison.fn), int(comparison.fp)
    else:
        # WFDB's matcher fails on an empty side; with nothing to pair, every beat is unmatched.
        empty = np.empty(0, dtype=np.int64)
        ref_matched, test_matched = empty, empty
        ref_unmatched, test_unmatched = np.arange(len(ref)), np.arange(len(test))
        tp, fn, fp = 0, len(ref), len(test)

    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    # matched_ref_inds[k] and matched_test_inds[k] are one pair
    np.add.at(confusion, (ref_lab[ref_matched], test_lab[test_matched]), 1)
    missed = np.bincount(ref_lab[ref_unmatched], minlength=n_classes).astype(np.int64)
    extra = np.bincount(test_lab[test_unmatched], minlength=n_classes).astype(np.int64)
    return {"tp": tp, "fn": fn, "fp": fp, "confusion": confusion, "missed": missed,
            "extra": extra, "window_width": window_width}


def _ratio(num: float, den: float) -> float:
    """num / den as a float; NaN when den is 0 (a measure with nothing to measure)."""
    return float(num) / float(den) if den else math.nan


def summarise(per_record: Mapping[str, dict], class_names: Sequence[str]) -> dict:
    """Gross and per-class EC57 figures over records compared with `compare_record`.

    Gross: se = tp / (tp + fn), ppv = tp / (tp + fp), f1, and the same per record. Per class c,
    over the summed confusion: se = C[c,c] / (C[c,:].sum() + missed[c]), ppv = C[c,c] /
    (C[:,c].sum() + extra[c]), and EC57's false positive rate fpr = (C[:,c].sum() - C[c,c]) /
    (C.sum() - C[c,:].sum()), i.e. matched beats of other classes called c over all matched beats
    of other classes. macro_f1 averages the class F1 over classes that have reference beats.
    Values are plain Python numbers (json-serialisable); undefined ratios are NaN.
    """
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    missed = np.zeros(k, dtype=np.int64)
    extra = np.zeros(k, dtype=np.int64)
    tp = fn = fp = 0
    records = {}
    for name, r in per_record.items():
        if np.shape(r["confusion"]) != (k, k):
            raise ValueError(f"record {name}: confusion has shape {np.shape(r['confusion'])} but "
                             f"{k} class names were given; pass the classes it was counted with")
        confusion += np.asarray(r["confusion"], dtype=np.int64)
        missed += np.asarray(r["missed"], dtype=np.int64)
        extra += np.asarray(r["extra"], dtype=np.int64)
        tp, fn, fp = tp + int(r["tp"]), fn + int(r["fn"]), fp + int(r["fp"])
        records[str(name)] = {"se": _ratio(r["tp"], r["tp"] + r["fn"]),
                              "ppv": _ratio(r["tp"], r["tp"] + r["fp"]),
                              "tp": int(r["tp"]), "fn": int(r["fn"]), "fp": int(r["fp"])}

    classes, f1s = {}, []
    for c, cname in enumerate(class_names):
        hit = int(confusion[c, c])
        n_ref = int(confusion[c, :].sum() + missed[c])
        n_pred = int(confusion[:, c].sum() + extra[c])
        f1 = _ratio(2 * hit, n_ref + n_pred)
        classes[str(cname)] = {
            "se": _ratio(hit, n_ref), "ppv": _ratio(hit, n_pred),
            "fpr": _ratio(confusion[:, c].sum() - hit, confusion.sum() - confusion[c, :].sum()),
            "f1": f1, "n_ref": n_ref, "n_pred": n_pred, "tp": hit}
        if n_ref > 0:
            f1s.append(f1)

    return {"se": _ratio(tp, tp + fn), "ppv": _ratio(tp, tp + fp),
            "f1": _ratio(2 * tp, 2 * tp + fn + fp), "tp": tp, "fn": fn, "fp": fp,
            "records": records, "classes": classes,
            "macro_f1": float(np.mean(f1s)) if f1s else math.nan,
            "confusion": confusion.tolist(), "missed": missed.tolist(), "extra": extra.tolist()}
