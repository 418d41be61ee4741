"""A decision rule fitted on held-out training data: per-class offsets added to a classifier's
scores before the argmax, chosen to maximise macro-F1 on a validation split.

A classifier trained on natural class balance (MIT-BIH: 89 % normal beats) puts its
argmax boundaries where the training prior does; shifting class c's score by b_c moves the
boundary the way a changed prior would (for log-probabilities, b_c = log(π'_c / π_c)). The
offsets are found by coordinate ascent over a grid, one class at a time, on scores of data
the classifier did not fit (whole held-out records on MIT-BIH), so the test split never
chooses them. Classes with fewer than ``min_support`` validation samples keep offset 0 (too
few to fit), as does the most frequent class (only differences between offsets matter).

Scores are logits or decision values; probabilities are taken as log-probabilities first.
"""
from __future__ import annotations

import numpy as np

from utils.metrics import classification_metrics

DECISION_RULES = ("argmax", "fitted")


def check_rule(rule: str) -> str:
    rule = str(rule)
    if rule not in DECISION_RULES:
        raise ValueError(f"task.decision_rule={rule!r} is not known; choose one of "
                         f"{', '.join(DECISION_RULES)}")
    return rule


def as_log_scores(scores: np.ndarray, scores_are_probs: bool) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return np.log(np.clip(scores, 1e-12, None)) if scores_are_probs else scores


def macro_f1(y: np.ndarray, pred: np.ndarray, classes: np.ndarray, k: int) -> float:
    """Macro-F1 over ``classes`` (the same quantity as sklearn's f1_score(labels=classes,
    average='macro', zero_division=0)), from one bincount: the inner loop of the search."""
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)[classes].astype(np.float64)
    denom = cm.sum(axis=1)[classes] + cm.sum(axis=0)[classes]
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


def fit_class_offsets(scores: np.ndarray, y: np.ndarray, min_support: int = 10,
                      grid_points: int = 161, rounds: int = 3) -> np.ndarray:
    """Offsets b [K] maximising macro-F1 of argmax(scores + b) on (scores, y).

    The grid spans ± the range of the scores in ``grid_points`` steps; a move is kept only
    when it raises macro-F1, and among equal values the offset nearest 0 wins, so classes the
    data says nothing about stay at the argmax rule. Never lowers macro-F1 on the data it is
    fitted on (all-zero offsets are the start)."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    k = scores.shape[1]
    support = np.bincount(y, minlength=k)
    present = np.flatnonzero(support > 0)
    tunable = [c for c in np.flatnonzero(support >= min_support) if c != int(support.argmax())]
    offsets = np.zeros(k)
    if not tunable:
        return offsets
    span = float(scores.max() - scores.min()) or 1.0
    grid = np.linspace(-span, span, grid_points)
    grid = grid[np.argsort(np.abs(grid), kind="stable")]   # nearest 0 first: ties keep it small
    best = macro_f1(y, (scores + offsets).argmax(1), present, k)
    for _ in range(rounds):
        moved = False
        for c in tunable:
            trial = offsets.copy()
            for b in grid:
                trial[c] = b
                value = macro_f1(y, (scores + trial).argmax(1), present, k)
                if value > best + 1e-12:
                    best, offsets[c], moved = value, b, True
        if not moved:
            break
    return offsets


def offsets_by_class(offsets: np.ndarray, class_names: list[str] | None) -> dict[str, float]:
    names = list(class_names) if class_names else [str(i) for i in range(len(offsets))]
    return {name: float(b) for name, b in zip(names, offsets)}


def rule_metrics(y: np.ndarray, scores: np.ndarray, offsets: np.ndarray | None,
                 class_names: list[str] | None, scores_are_probs: bool = False) -> dict:
    """classification_metrics under the rule: with ``offsets``, of argmax(scores + offsets)
    (scores as log-probabilities when they are probabilities), the plain argmax figures kept
    under "argmax" and the AUROC of the plain scores (a per-class shift is no ranking)."""
    plain = classification_metrics(y, scores, class_names, scores_are_probs=scores_are_probs)
    if offsets is None:
        return plain
    plain.pop("confusion_matrix")
    adjusted = classification_metrics(y, as_log_scores(scores, scores_are_probs) + offsets, class_names)
    adjusted["auroc"] = plain["auroc"]
    return {**adjusted, "argmax": plain}


def rule_record(offsets: np.ndarray, class_names: list[str] | None) -> dict:
    """What metrics.json records of a fitted rule."""
    return {"rule": "fitted", "fitted_on": "val", "objective": "macro_f1",
            "offsets": offsets_by_class(offsets, class_names)}
