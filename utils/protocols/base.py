"""What every classification protocol returns: a fitted classifier with ``predict`` (class
indices) and ``scores`` ([N, num_classes], higher = more likely; probabilities or decision
values) so metrics such as AUROC work the same for all of them."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F


class SklearnClassifier:
    """Adapter giving a fitted scikit-learn estimator the protocol interface. Columns of
    ``scores`` follow the class indices 0..num_classes-1 even when the training subset
    lacked a class (its column is then the lowest score)."""

    def __init__(self, estimator, num_classes: int):
        self.estimator, self.num_classes = estimator, num_classes

    def predict(self, features) -> np.ndarray:
        return np.asarray(self.estimator.predict(np.asarray(features)))

    def scores(self, features) -> np.ndarray:
        est, x = self.estimator, np.asarray(features)
        raw = est.predict_proba(x) if self.scores_are_probs else est.decision_function(x)
        classes = np.asarray(est.classes_)
        if raw.ndim == 1:                      # binary decision function: score of class 1
            raw = np.stack([-raw, raw], axis=1)
        # a class the (few-label) training subset lacked is never predicted
        fill = 0.0 if self.scores_are_probs else float(raw.min()) - 1.0
        out = np.full((len(x), self.num_classes), fill)
        out[:, classes.astype(int)] = raw
        return out

    @property
    def scores_are_probs(self) -> bool:
        est = self.estimator
        return hasattr(est, "predict_proba") and not _is_svc(est)


def _is_svc(est) -> bool:
    from sklearn.svm import SVC
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    return isinstance(last, SVC)


CLASS_WEIGHTS = (None, "balanced")


def check_class_weight(class_weight):
    """task.protocol_args.<protocol>.class_weight: null or balanced."""
    if class_weight not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight={class_weight!r} (task.protocol_args) is not known; "
                         "choose null or balanced")
    return class_weight


def num_classes_of(y, num_classes: int | None) -> int:
    return int(num_classes) if num_classes is not None else int(np.max(y)) + 1


def subsample_rows(y, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` rows, stratified by ``y`` as sklearn's train_test_split (seeded);
    plain random rows when a class has a single member (stratification impossible)."""
    from sklearn.model_selection import train_test_split
    y = np.asarray(y)
    idx = np.arange(len(y))
    try:
        return train_test_split(idx, train_size=n, random_state=seed, stratify=y)[0]
    except ValueError:
        return np.random.default_rng(seed).choice(idx, size=n, replace=False)


def train_keep_best(module, optimizer, x, y, forward, *, epochs: int, batch_size: int,
                    generator, predict_val=None, val_y=None, patience: int | None = None,
                    min_epochs: int = 0, device=None, loss_fn=None, min_batch: int = 1):
    """Mini-batch training of ``module``: cross-entropy of ``forward(xb)`` (logits), or
    ``loss_fn(xb, yb)`` when given (e.g. TF-C's cross-entropy + pretext loss); batches
    smaller than ``min_batch`` are skipped. With ``predict_val`` (-> predicted labels of the
    validation split), the weights of the epoch with the best validation accuracy are kept,
    stopping after ``patience`` epochs without improvement, but not before ``min_epochs``.
    The one protocol trainer: the linear probe and both fine-tuning protocols use it."""
    best, best_state, stale = -1.0, None, 0
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < min_batch:
                continue
            xb, yb = (x[idx], y[idx]) if device is None else (x[idx].to(device), y[idx].to(device))
            loss = F.cross_entropy(forward(xb), yb) if loss_fn is None else loss_fn(xb, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if predict_val is None:
            continue
        acc = float((predict_val() == np.asarray(val_y)).mean())
        if acc > best:
            best, best_state, stale = acc, copy.deepcopy(module.state_dict()), 0
        else:
            stale += 1
            if patience is not None and stale >= patience and epoch + 1 >= min_epochs:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
