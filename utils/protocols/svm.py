"""TS2Vec's SVM protocol: RBF SVC (gamma='scale') on the frozen representations, C chosen
by 5-fold cross-validated grid search over 1e-4 ... 1e4 and infinity (hard margin).
Too little data for cross-validation (fewer than 5 samples per class on average or fewer
than 50 samples) fits C = infinity directly; more than ``max_samples`` training samples are
subsampled (stratified) for the search, as the official evaluation."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from .base import SklearnClassifier, num_classes_of, subsample_rows

C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf]


def fit_svm(features, y, num_classes: int | None = None, seed: int = 0,
            max_samples: int = 10000, cv: int = 5, n_jobs: int | None = None, **_):
    x, y = np.asarray(features, dtype=np.float64), np.asarray(y)
    n_cls = len(np.unique(y))
    svm = SVC(C=np.inf, kernel="rbf", gamma="scale", max_iter=10_000_000)
    if len(y) // n_cls < 5 or len(y) < 50:
        est = svm.fit(x, y)
    else:
        if len(y) > max_samples:
            keep = subsample_rows(y, max_samples, seed)
            x, y = x[keep], y[keep]
        search = GridSearchCV(svm, {"C": C_GRID}, cv=cv, n_jobs=n_jobs)
        est = search.fit(x, y).best_estimator_
    return SklearnClassifier(est, num_classes_of(y, num_classes))
