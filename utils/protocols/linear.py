"""Linear probe: a linear layer trained with cross-entropy on frozen, standardised
representations (Adam). With validation features, the epoch with the best validation
accuracy is kept (early stopping after ``patience`` epochs without improvement)."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import num_classes_of


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
               batch_size: int = 256, patience: int = 20, **_):
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    k = num_classes_of(y, num_classes)
    mean, std = x.mean(0), x.std(0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(x.shape[1], k)
    with torch.no_grad():       # seeded init, independent of the global RNG
        bound = 1 / np.sqrt(x.shape[1])
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)
    probe = LinearProbe(layer, mean, std)
    xt, yt = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, stale = -1.0, None, 0
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(layer(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val_features is None or len(val_features) == 0:
            continue
        acc = float((probe.predict(val_features) == np.asarray(val_y)).mean())
        if acc > best:
            best, best_state, stale = acc, copy.deepcopy(layer.state_dict()), 0
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if best_state is not None:
        layer.load_state_dict(best_state)
    return probe
