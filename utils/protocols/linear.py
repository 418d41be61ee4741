"""Linear probe: a linear layer trained with cross-entropy on frozen, standardised
representations (Adam; weights start at N(0, 0.01) as MoCo's and DINO's linear evaluation). With validation features, the epoch with the best validation
accuracy is kept (early stopping after ``patience`` epochs without improvement). Small
labelled sets train for at least ``min_steps`` optimizer steps. ``class_weight="balanced"``
weighs the cross-entropy by inverse class frequency (as the supervised loss's option)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.supervised import balanced_class_weights

from .base import check_class_weight, num_classes_of, train_keep_best


class LinearProbe:
    scores_are_probs = True

    def __init__(self, layer: nn.Linear, mean: np.ndarray, std: np.ndarray):
        self.layer, self.mean, self.std = layer, mean, std

    def _logits(self, features) -> torch.Tensor:
        x = (np.asarray(features, dtype=np.float32) - self.mean) / self.std
        with torch.no_grad():
            return self.layer(torch.from_numpy(x.astype(np.float32)))

    def scores(self, features) -> np.ndarray:
        return torch.softmax(self._logits(features), dim=-1).numpy()

    def predict(self, features) -> np.ndarray:
        return self._logits(features).argmax(-1).numpy()


def fit_linear(features, y, num_classes: int | None = None, val_features=None, val_y=None,
               seed: int = 0, epochs: int = 100, lr: float = 1e-3, weight_decay: float = 0.0,
               batch_size: int = 256, patience: int = 20, min_steps: int = 1000,
               class_weight: str | None = None, **_):
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    k = num_classes_of(y, num_classes)
    mean, std = x.mean(0), x.std(0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(x.shape[1], k)
    with torch.no_grad():       # seeded, independent of the global RNG
        # MoCo / DINO linear evaluation: N(0, 0.01) weights, zero bias. A default (uniform
        # +-1/sqrt(D)) start gives random logits of order 1 that the few steps of a small
        # labelled set (one step per epoch at 1 % labels) do not undo
        layer.weight.normal_(0.0, 0.01, generator=gen)
        layer.bias.zero_()
    probe = LinearProbe(layer, mean, std)
    xt, yt = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    # a small labelled set (1 % labels: one or two batches) would get a few hundred steps of
    # lr 1e-3 in ``epochs`` passes, too few to fit even the class prior: train at least
    # ``min_steps`` steps (early stopping may not cut them short: an epoch of a few steps
    # that happens to score well on a small validation set would otherwise win), stretching
    # the patience alike
    per_epoch = -(-len(xt) // batch_size)
    stretch = max(1, -(-int(min_steps) // (per_epoch * epochs))) if min_steps else 1
    epochs, patience = epochs * stretch, None if patience is None else patience * stretch
    min_epochs = -(-int(min_steps) // per_epoch) if min_steps else 0
    has_val = val_features is not None and len(val_features) > 0
    loss_fn = None
    if check_class_weight(class_weight) == "balanced":
        w = torch.tensor(balanced_class_weights(np.bincount(y, minlength=k)), dtype=torch.float32)
        loss_fn = lambda xb, yb: F.cross_entropy(layer(xb), yb, weight=w)   # noqa: E731
    train_keep_best(layer, opt, xt, yt, layer, epochs=epochs, batch_size=batch_size, generator=gen,
                    predict_val=(lambda: probe.predict(val_features)) if has_val else None,
                    val_y=val_y, patience=patience, min_epochs=min_epochs, loss_fn=loss_fn)
    return probe
