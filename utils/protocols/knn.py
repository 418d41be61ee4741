"""TS2Vec's k-nearest-neighbour protocol: standardised representations, 1-NN (Euclidean)."""
from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .base import SklearnClassifier, num_classes_of


def fit_knn(features, y, num_classes: int | None = None, n_neighbors: int = 1, **_):
    x, y = np.asarray(features, dtype=np.float64), np.asarray(y)
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=n_neighbors))
    return SklearnClassifier(pipe.fit(x, y), num_classes_of(y, num_classes))
