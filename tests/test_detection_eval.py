"""Detection building blocks against independent answers: the Hungarian step against brute force,
1-D GIoU identities, greedy NMS, window ownership/merging against a synthetic beat stream, and the
EC57 comparison against WFDB's matcher and hand counts on real MIT-BIH annotations."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from utils.detection.ec57 import compare_record, summarise
from utils.detection.intervals import nms_1d, paired_giou, pairwise_giou, pairwise_iou
from utils.detection.matching import hungarian
from utils.detection.windows import merge_windows, ownership, window_starts

FS = 360


# ---------------------------------------------------------------- Hungarian matching

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n,m", [(1, 1), (3, 2), (4, 4), (5, 3), (6, 4)])
def test_hungarian_equals_brute_force(seed, n, m):
    cost = torch.rand(n, m, generator=torch.Generator().manual_seed(seed))
    rows, cols = hungarian(cost)
    assert len(rows) == len(cols) == m
    assert len(set(rows.tolist())) == m and len(set(cols.tolist())) == m     # one-to-one
    assert rows.tolist() == sorted(rows.tolist())
    # every way of giving each target its own prediction
    best = min(itertools.permutations(range(n), m),
               key=lambda pred: sum(cost[p, t].item() for t, p in enumerate(pred)))
    best_cost = sum(cost[p, t].item() for t, p in enumerate(best))
    assert cost[rows, cols].sum().item() == pytest.approx(best_cost, abs=1e-6)
    # continuous random costs have a single optimum: the same pairs
    assert sorted(zip(rows.tolist(), cols.tolist())) == sorted((p, t) for t, p in enumerate(best))


# ---------------------------------------------------------------- 1-D IoU / GIoU

def _random_intervals(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.rand(n, generator=g) * 10, torch.rand(n, generator=g) * 3 + 0.05], -1)


def test_giou_identities():
    a, b = _random_intervals(40, 0), _random_intervals(40, 1)
    assert torch.allclose(paired_giou(a, a), torch.ones(40), atol=1e-6)
    assert torch.allclose(torch.diagonal(pairwise_giou(a, a)), torch.ones(40), atol=1e-6)
    iou, giou = pairwise_iou(a, b), pairwise_giou(a, b)
    assert (iou >= 0).all() and (iou <= 1 + 1e-6).all()
    assert (giou > -1).all() and (giou <= 1 + 1e-6).all()
    assert (giou <= iou + 1e-6).all()
    assert torch.allclose(giou, pairwise_giou(b, a).T, atol=1e-6)              # symmetric
    assert torch.allclose(paired_giou(a, b), torch.diagonal(giou), atol=1e-6)  # pairwise == paired


def test_giou_equals_iou_when_contained_and_tends_to_minus_one_when_far():
    outer = torch.tensor([[5.0, 4.0], [0.0, 10.0]])
    inner = torch.tensor([[5.5, 1.0], [-3.0, 2.0]])          # both inside their outer interval
    iou = torch.diagonal(pairwise_iou(outer, inner))
    assert torch.allclose(paired_giou(outer, inner), iou, atol=1e-6)
    assert torch.allclose(iou, torch.tensor([1 / 4, 2 / 10]), atol=1e-6)
    near, far = torch.tensor([[0.0, 1.0]]), torch.tensor([[1e5, 1.0]])
    g = paired_giou(near, far).item()
    assert -1 < g < -0.999
    # disjoint but close: IoU 0, GIoU = -gap / hull
    assert paired_giou(near, torch.tensor([[3.0, 1.0]])).item() == pytest.approx(-2 / 4, abs=1e-6)


# ---------------------------------------------------------------- NMS

def test_nms_keeps_best_of_overlapping_and_disjoint_ones_sorted_by_score():
    # (centre, width): a and b overlap heavily, c is far from both
    boxes = torch.tensor([[10.0, 4.0], [10.5, 4.0], [50.0, 4.0]])
    scores = torch.tensor([0.9, 0.8, 0.95])
    keep = nms_1d(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [2, 0]
    assert (scores[keep][:-1] >= scores[keep][1:]).all()


def test_nms_is_greedy_over_kept_intervals_only():
    # edges [0,4], [1,5], [2,6]: IoU(a,b) = IoU(b,c) = 0.6, IoU(a,c) = 1/3
    boxes = torch.tensor([[2.0, 4.0], [3.0, 4.0], [4.0, 4.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms_1d(boxes, scores, 0.5).tolist() == [0, 2]    # c survives: only b, dropped, hid it
    assert nms_1d(boxes, scores, 0.3).tolist() == [0]
    assert nms_1d(boxes, scores, 0.7).tolist() == [0, 1, 2]
    assert nms_1d(boxes[:0], scores[:0], 0.5).numel() == 0


# ---------------------------------------------------------------- windows

def test_window_starts_examples_and_errors():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]       # last window ends at 10
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]    # one more, ending at the end
    assert window_starts(12, 4, 4).tolist() == [0, 4, 8]
    assert window_starts(3, 4, 2).tolist() == [0]              # shorter than a window
    assert window_starts(4, 4, 2).tolist() == [0]
    assert window_starts(10, 4, 3).dtype == np.int64
    for stride in (0, -1, 5):
        with pytest.raises(ValueError, match="data.stride_seconds"):
            window_starts(100, 4, stride)
    with pytest.raises(ValueError, match="data.window_seconds"):
        window_starts(100, 0, 1)


def test_ownership_examples():
    lo, hi = ownership(np.array([0, 3, 6, 7]), 4, 11)
    assert lo.tolist() == [0, 3, 6, 8] and hi.tolist() == [3, 6, 8, 11]
    lo, hi = ownership(window_starts(12, 4, 4), 4, 12)          # no overlap: split at each start
    assert lo.tolist() == [0, 4, 8] and hi.tolist() == [4, 8, 12]
    lo, hi = ownership(np.array([0]), 10, 7)                     # padded short record
    assert lo.tolist() == [0] and hi.tolist() == [7]


def test_owned_ranges_tile_the_record():
    rng = np.random.default_rng(0)
    for _ in range(500):
        window = int(rng.integers(1, 60))
        stride = int(rng.integers(1, window + 1))
        length = int(rng.integers(1, 400))
        starts = window_starts(length, window, stride)
        lo, hi = ownership(starts, window, length)
        assert lo[0] == 0 and hi[-1] == length
        assert (lo[1:] == hi[:-1]).all() and (hi > lo).all()
        assert (lo >= starts).all() and (hi <= starts + window).all()  # owned inside its window
        covered = np.zeros(length, dtype=int)
        for a, b in zip(lo, hi):
            covered[a:b] += 1
        assert (covered == 1).all()


def _detect_per_window(starts, window, length, beats, labels, scores, rng):
    """Each window reports every beat inside it (clipped at the record's end, as padding holds
    no beat), at a position off by less than half a sample, plus a spurious one in the padding."""
    pos, lab, sco = [], [], []
    for s in starts:
        inside = (beats >= s) & (beats < s + window)
        rel = (beats[inside] - s) + rng.uniform(-0.4, 0.4, inside.sum())
        p, l, c = [rel], [labels[inside]], [scores[inside]]
        if s + window > length:           # the padding past the end: must be dropped
            p.append(np.array([length - s + 0.6 + rng.integers(0, s + window - length)]))
            l.append(np.array([0]))
            c.append(np.array([0.5]))
        pos.append(np.concatenate(p)), lab.append(np.concatenate(l)), sco.append(np.concatenate(c))
    return pos, lab, sco


@pytest.mark.parametrize("seed", range(6))
def test_merge_windows_counts_each_beat_once(seed):
    rng = np.random.default_rng(seed)
    window = int(rng.integers(50, 400))
    stride = int(rng.integers(1, window + 1))
    length = int(rng.integers(window // 2, 20 * window))
    starts = window_starts(length, window, stride)
    lo, hi = ownership(starts, window, length)
    # random beats plus every awkward place: window edges and owned-range boundaries
    awkward = np.concatenate([starts, starts + window - 1, starts + window, lo, hi - 1, hi,
                              [0, length - 1]])
    beats = np.concatenate([rng.integers(0, length, 3 * length // window + 5), awkward])
    beats = np.unique(beats[(beats >= 0) & (beats < length)])
    labels = rng.integers(0, 5, len(beats))
    scores = rng.random(len(beats))
    pos, lab, sco = _detect_per_window(starts, window, length, beats, labels, scores, rng)

    merged_pos, merged_lab, merged_sco = merge_windows(starts, window, length, pos, lab, sco)
    assert merged_pos.dtype == np.int64 and merged_lab.dtype == np.int64
    assert merged_pos.tolist() == beats.tolist()       # each beat once: none doubled, none dropped
    assert merged_lab.tolist() == labels.tolist()      # labels and scores travel with their beat
    assert np.allclose(merged_sco, scores)


def test_merge_windows_sorts_and_rejects_ragged_input():
    starts = window_starts(20, 10, 5)                  # [0, 5, 10]; owned [0,7) [7,12) [12,20)
    # window 1 sees sample 6 too, but window 0 owns it
    pos, lab, sco = merge_windows(starts, 10, 20,
                                  [np.array([6, 1]), np.array([4.0, 1.0]), np.array([9, 3])],
                                  [np.array([1, 2]), np.array([3, 4]), np.array([0, 1])],
                                  [np.array([.1, .2]), np.array([.3, .4]), np.array([.5, .6])])
    assert pos.tolist() == [1, 6, 9, 13, 19] and lab.tolist() == [2, 1, 3, 1, 0]
    assert np.allclose(sco, [.2, .1, .3, .6, .5])
    with pytest.raises(ValueError, match="one positions/labels/scores array per window"):
        merge_windows(starts, 10, 20, [np.array([1])], [np.array([0])], [np.array([1.0])])


# ---------------------------------------------------------------- EC57 on real annotations

def _reference_beats(data_dir, record: str):
    import wfdb
    from data_provider.mitdb_signal import AAMI_INDEX
    ann = wfdb.rdann(str(data_dir / "mitdb" / record), "atr")
    assert ann.fs == FS
    keep = [i for i, s in enumerate(ann.symbol) if s in AAMI_INDEX]
    return (np.asarray(ann.sample)[keep].astype(np.int64),
            np.array([AAMI_INDEX[ann.symbol[i]] for i in keep], dtype=np.int64))


def _perturb(ref, ref_lab, seed: int, width: int, jitter: int = 5):
    """A test annotation from the reference: beats jittered by <= `jitter` samples, some removed,
    some relabelled, spurious ones added midway between reference beats (far from every beat),
    with the counts each change should produce."""
    rng = np.random.default_rng(seed)
    n = len(ref)
    removed = rng.random(n) < 0.04
    kept = np.flatnonzero(~removed)
    test_lab_kept = ref_lab[kept].copy()
    relabel = rng.random(len(kept)) < 0.06
    test_lab_kept[relabel] = (test_lab_kept[relabel] + rng.integers(1, 5, relabel.sum())) % 5
    test_kept = ref[kept] + rng.integers(-jitter, jitter + 1, len(kept))
    gaps = np.flatnonzero(np.diff(ref) > 2 * (width + jitter) + 2)
    slots = rng.choice(gaps, size=min(40, len(gaps)), replace=False)
    spurious = (ref[slots] + ref[slots + 1]) // 2
    spurious_lab = rng.integers(0, 5, len(spurious))

    test = np.concatenate([test_kept, spurious])
    test_lab = np.concatenate([test_lab_kept, spurious_lab])
    order = np.argsort(test, kind="stable")
    expected_confusion = np.zeros((5, 5), dtype=np.int64)
    for r, t in zip(ref_lab[kept], test_lab_kept):
        expected_confusion[r, t] += 1
    expected = {"tp": len(kept), "fn": int(removed.sum()), "fp": len(spurious),
                "confusion": expected_confusion,
                "missed": np.bincount(ref_lab[removed], minlength=5),
                "extra": np.bincount(spurious_lab, minlength=5)}
    return test[order], test_lab[order], expected


def test_compare_record_on_record_100(data_dir):
    from tests.helpers import require_files
    require_files(data_dir, "mitdb/100.hea", "mitdb/100.atr", "mitdb/100.dat")
    from wfdb.processing import compare_annotations
    ref, ref_lab = _reference_beats(data_dir, "100")
    width = round(0.15 * FS)
    test, test_lab, expected = _perturb(ref, ref_lab, seed=0, width=width)

    result = compare_record(ref, ref_lab, test, test_lab, fs=FS)
    direct = compare_annotations(ref, test, width)
    assert result["tp"] == len(direct.matched_ref_inds)
    assert result["fn"] == len(direct.unmatched_ref_inds)
    assert result["fp"] == len(direct.unmatched_test_inds)
    assert result["tp"] + result["fn"] == len(ref)
    assert result["tp"] + result["fp"] == len(test)
    # independent counts from what was removed, added and relabelled
    for key in ("tp", "fn", "fp"):
        assert result[key] == expected[key], key
    for key in ("confusion", "missed", "extra"):
        assert np.array_equal(result[key], expected[key]), key
    assert result["confusion"].sum() == result["tp"]
    assert result["missed"].sum() == result["fn"] and result["extra"].sum() == result["fp"]

    # unsorted input gives the same answer
    shuffle = np.random.default_rng(1).permutation(len(test))
    again = compare_record(ref, ref_lab, test[shuffle], test_lab[shuffle], fs=FS)
    assert np.array_equal(again["confusion"], result["confusion"])


def test_compare_record_skip_drops_exactly_the_beats_before_it(data_dir):
    from tests.helpers import require_files
    require_files(data_dir, "mitdb/100.hea", "mitdb/100.atr", "mitdb/100.dat")
    ref, ref_lab = _reference_beats(data_dir, "100")
    test, test_lab, _ = _perturb(ref, ref_lab, seed=2, width=round(0.15 * FS))
    skip = 300.0
    cut = skip * FS
    result = compare_record(ref, ref_lab, test, test_lab, fs=FS, skip_seconds=skip)
    assert result["tp"] + result["fn"] == int((ref >= cut).sum()) < len(ref)
    assert result["tp"] + result["fp"] == int((test >= cut).sum())
    by_hand = compare_record(ref[ref >= cut], ref_lab[ref >= cut],
                             test[test >= cut], test_lab[test >= cut], fs=FS)
    for key in ("tp", "fn", "fp"):
        assert result[key] == by_hand[key]
    for key in ("confusion", "missed", "extra"):
        assert np.array_equal(result[key], by_hand[key])


def test_compare_record_empty_sides_and_bad_labels():
    ref = np.array([100, 500, 900])
    labels = np.array([0, 2, 1])
    r = compare_record(ref, labels, np.array([], dtype=int), np.array([], dtype=int), fs=FS)
    assert (r["tp"], r["fn"], r["fp"]) == (0, 3, 0) and r["missed"].tolist() == [1, 1, 1, 0, 0]
    r = compare_record(np.array([], dtype=int), np.array([], dtype=int), ref, labels, fs=FS)
    assert (r["tp"], r["fn"], r["fp"]) == (0, 0, 3) and r["extra"].tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="AAMI_INDEX"):
        compare_record(ref, np.array([0, 5, 1]), ref, labels, fs=FS)


def test_summarise_over_two_records(data_dir):
    from tests.helpers import require_files
    require_files(data_dir, "mitdb/100.hea", "mitdb/100.atr", "mitdb/100.dat",
                  "mitdb/101.hea", "mitdb/101.atr", "mitdb/101.dat")
    from data_provider.mitdb_signal import CLASS_NAMES
    width = round(0.15 * FS)
    per_record = {}
    for seed, record in enumerate(("100", "101")):
        ref, ref_lab = _reference_beats(data_dir, record)
        test, test_lab, _ = _perturb(ref, ref_lab, seed=seed + 10, width=width)
        per_record[record] = compare_record(ref, ref_lab, test, test_lab, fs=FS)
    s = summarise(per_record, CLASS_NAMES)
    json.dumps(s)                                            # plain Python values

    tp = sum(r["tp"] for r in per_record.values())
    fn = sum(r["fn"] for r in per_record.values())
    fp = sum(r["fp"] for r in per_record.values())
    assert s["se"] == pytest.approx(tp / (tp + fn)) and s["ppv"] == pytest.approx(tp / (tp + fp))
    assert s["f1"] == pytest.approx(2 * tp / (2 * tp + fn + fp))
    for name, r in per_record.items():
        assert s["records"][name]["se"] == pytest.approx(r["tp"] / (r["tp"] + r["fn"]))
        assert s["records"][name]["ppv"] == pytest.approx(r["tp"] / (r["tp"] + r["fp"]))

    C = sum(r["confusion"] for r in per_record.values())
    missed = sum(r["missed"] for r in per_record.values())
    extra = sum(r["extra"] for r in per_record.values())
    for c, name in enumerate(CLASS_NAMES):
        got = s["classes"][name]
        n_ref, n_pred = C[c].sum() + missed[c], C[:, c].sum() + extra[c]
        for key, den in (("se", n_ref), ("ppv", n_pred)):
            assert math.isnan(got[key]) if den == 0 else got[key] == pytest.approx(C[c, c] / den)
        assert got["fpr"] == pytest.approx((C[:, c].sum() - C[c, c]) / (C.sum() - C[c].sum()))
    # records 100 and 101 hold no F beats: F's Se is undefined and F is left out of macro-F1
    assert math.isnan(s["classes"]["F"]["se"])
    present = [n for n in CLASS_NAMES if s["classes"][n]["n_ref"] > 0]
    assert "F" not in present and {"N", "S"} <= set(present)
    assert s["macro_f1"] == pytest.approx(np.mean([s["classes"][n]["f1"] for n in present]))


def test_summarise_gives_nan_not_errors_when_nothing_to_measure():
    empty = compare_record(np.array([], dtype=int), np.array([], dtype=int),
                           np.array([], dtype=int), np.array([], dtype=int), fs=FS)
    s = summarise({"x": empty}, ["N", "S", "V", "F", "Q"])
    assert math.isnan(s["se"]) and math.isnan(s["ppv"]) and math.isnan(s["macro_f1"])
    assert all(math.isnan(v) for c in s["classes"].values() for k, v in c.items()
               if k in ("se", "ppv", "fpr", "f1"))
    assert math.isnan(s["records"]["x"]["se"])
    json.dumps(s)
