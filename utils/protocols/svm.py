"""TS2Vec's SVM protocol: RBF SVC (gamma='scale') on the frozen representations, C chosen
by 5-fold cross-validated grid search over 1e-4 ... 1e4 and infinity (hard margin).
Too little data for cross-validation (fewer than 5 samples per class on average or fewer
than 50 samples) fits C = infinity directly; more than ``max_samples`` training samples are
subsampled (stratified) for the search, as the official evaluation.

Predictions are SVC.predict (libsvm's one-vs-one vote, a tie going to the lowest class
index), which is what the official accuracy (``clf.score``) counts. The scores are the
one-vs-rest decision values, whose argmax breaks a vote tie by the summed confidences
instead; on such a tie the predicted class takes the top score (see SVMClassifier), so the
accuracy the metrics derive from the scores is the official one."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from .base import SklearnClassifier, check_class_weight, num_classes_of, subsample_rows


class SVMClassifier(SklearnClassifier):
    """SklearnClassifier whose score argmax always equals ``predict`` (the official accuracy).

    With three or more classes, SVC's one-vs-rest ``decision_function`` is the one-vs-one
    vote count plus a bounded confidence term; when the votes tie (e.g. 1-1-1), its argmax
    can pick another class than ``predict`` (the first class with the most votes). In such a
    row the predicted class's score and the top score swap places; other rows are untouched.
    The votes are read off the decision values themselves (the confidence term lies within
    +-1/3, so rounding recovers them), so the kernel is evaluated once, not again by predict."""

    def scores(self, features) -> np.ndarray:
        out = super().scores(features)
        if len(self.estimator.classes_) < 3:    # two classes: one decision value, no votes
            return out
        pred = np.round(out).argmax(axis=1)     # most votes, ties to the lowest class (libsvm)
        rows = np.flatnonzero(out.argmax(axis=1) != pred)
        if len(rows):
            top = out[rows].argmax(axis=1)
            hi, lo = out[rows, top].copy(), out[rows, pred[rows]].copy()
            out[rows, top], out[rows, pred[rows]] = lo, hi
        return out


C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf]


def fit_svm(features, y, num_classes: int | None = None, seed: int = 0,
            max_samples: int = 10000, cv: int = 5, n_jobs: int | str | None = "auto",
            class_weight: str | None = None, **_):
    """class_weight: None (TS2Vec's) or "balanced" (each class's errors weighted by its inverse
    frequency, scikit-learn's SVC(class_weight="balanced")). n_jobs: the grid search's
    parallel fits; "auto" = torch's thread count (trainer.num_threads, else the cores), as the
    run's training used them. The chosen C and the predictions do not depend on it."""
    if n_jobs == "auto":
        n_jobs = torch.get_num_threads()
    x, y = np.asarray(features, dtype=np.float64), np.asarray(y)
    n_cls = len(np.unique(y))
    svm = SVC(C=np.inf, kernel="rbf", gamma="scale", max_iter=10_000_000,
              class_weight=check_class_weight(class_weight))
    if len(y) // n_cls < 5 or len(y) < 50:
        est = svm.fit(x, y)
    else:
        if len(y) > max_samples:
            keep = subsample_rows(y, max_samples, seed)
            x, y = x[keep], y[keep]
        search = GridSearchCV(svm, {"C": C_GRID}, cv=cv, n_jobs=n_jobs)
        est = search.fit(x, y).best_estimator_
    return SVMClassifier(est, num_classes_of(y, num_classes))
