"""Classification metrics as ECG papers report them: accuracy, macro-F1, AUROC and, per
class, sensitivity (recall) and positive predictive value (precision)."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classification_metrics(y_true: np.ndarray, scores: np.ndarray,
                           class_names: list[str] | None = None, scores_are_probs: bool = False) -> dict:
    """y_true [N] ints in 0..K-1; scores [N, K] logits (or probabilities)."""
    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    k = scores.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    probs = scores if scores_are_probs else softmax(scores)
    y_pred = probs.argmax(axis=1)
    labels = np.arange(k)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    per_class = {}
    negatives = len(y_true) - support
    for i, name in enumerate(names):
        per_class[name] = {
            "sensitivity": float(tp[i] / support[i]) if support[i] else float("nan"),
            "ppv": float(tp[i] / predicted[i]) if predicted[i] else float("nan"),
            # false positive rate, FP / (FP + TN), as AAMI EC57 reports it beside Se and +P
            "fpr": float((predicted[i] - tp[i]) / negatives[i]) if negatives[i] else float("nan"),
            "support": int(support[i]),
        }
    present = labels[support > 0]
    out = {
        "accuracy": float((y_pred == y_true).mean()),
        # macro over the classes present in y_true, so a class absent from a split does not
        # count as a zero
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "auroc": _auroc(y_true, probs, present),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
    return out


def per_record_metrics(y_true: np.ndarray, y_pred: np.ndarray, record: np.ndarray,
                       class_names: list[str]) -> list[dict]:
    """Per recording: beats, errors, and each class's sensitivity / positive predictive value
    (null where the record has no such beat / no such prediction), records sorted by errors."""
    rows = []
    for r in np.unique(record):
        mine = record == r
        yt, yp = y_true[mine], y_pred[mine]
        per_class = {}
        for i, name in enumerate(class_names):
            n_true, n_pred = int((yt == i).sum()), int((yp == i).sum())
            if n_true or n_pred:
                hit = int(((yt == i) & (yp == i)).sum())
                per_class[name] = {"support": n_true, "predicted": n_pred,
                                   "sensitivity": hit / n_true if n_true else None,
                                   "ppv": hit / n_pred if n_pred else None}
        rows.append({"record": int(r), "beats": int(mine.sum()), "errors": int((yt != yp).sum()),
                     "per_class": per_class})
    return sorted(rows, key=lambda row: (-row["errors"], row["record"]))


def _auroc(y_true, probs, present) -> float:
    if len(present) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if probs.shape[1] == 2:
            return float(roc_auc_score(y_true, probs[:, 1]))
        # one-vs-rest macro AUROC over the classes present in this split
        aucs = [roc_auc_score(y_true == c, probs[:, c]) for c in present]
        return float(np.mean(aucs))


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """{'per_class': {'V': {'sensitivity': .9}}} -> {'per_class/V/sensitivity': .9}; drops
    non-scalars (confusion matrix)."""
    flat = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten_metrics(v, key + "/"))
        elif isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
            flat[key] = float(v)
    return flat


def unflatten_metrics(flat: dict[str, float]) -> dict:
    """The inverse of flatten_metrics: {'per_class/V/sensitivity': .9} -> nested dicts."""
    nested: dict = {}
    for key, v in flat.items():
        *parents, leaf = key.split("/")
        d = nested
        for part in parents:
            d = d.setdefault(part, {})
        d[leaf] = v
    return nested


def summary_line(metrics: dict, limit: int = 6) -> str:
    """The first ``limit`` numeric metrics as "name value" pairs, for the log."""
    keys = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return " ".join(f"{k} {metrics[k]:.4f}" for k in keys[:limit])
