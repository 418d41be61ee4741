"""TS2Vec's logistic-regression protocol: standardised representations, L2 logistic
regression (C=1, lbfgs to convergence). More than ``max_samples`` training samples are
subsampled (stratified). ``class_weight="balanced"`` weighs each class by its inverse frequency."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .base import SklearnClassifier, check_class_weight, num_classes_of, subsample_rows


def fit_logistic(features, y, num_classes: int | None = None, seed: int = 0,
                 max_samples: int = 100000, max_iter: int = 1_000_000,
                 class_weight: str | None = None, **_):
    x, y = np.asarray(features, dtype=np.float64), np.asarray(y)
    if len(y) > max_samples:
        keep = subsample_rows(y, max_samples, seed)
        x, y = x[keep], y[keep]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(
        random_state=seed, max_iter=max_iter, class_weight=check_class_weight(class_weight)))
    return SklearnClassifier(pipe.fit(x, y), num_classes_of(y, num_classes))
