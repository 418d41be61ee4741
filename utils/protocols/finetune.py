"""Fine-tuning: the whole pretrained network plus a linear head trained end to end with
cross-entropy on the labelled training split (AdamW). A copy is trained; the pretrained
model is left as it was. With a validation split, the epoch with the best validation
accuracy is kept (early stopping after ``patience`` epochs).

Needs the representation model's differentiable ``embed(x, pooling) -> [B, D]`` (no
augmentation) and its ``repr_dim``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import num_classes_of


class FineTuned(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, pooling: str = "max"):
        super().__init__()
        if not hasattr(backbone, "embed") or not hasattr(backbone, "repr_dim"):
            raise TypeError(f"{type(backbone).__name__} has no embed(x, pooling)/repr_dim; "
                            "the finetune protocol needs them (see exp/exp_pretrain.py)")
        self.backbone, self.pooling = backbone, pooling
        self.head = nn.Linear(backbone.repr_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.embed(x, self.pooling))


class FineTunedClassifier:
    scores_are_probs = True

    def __init__(self, net: FineTuned, device, batch_size: int):
        self.net, self.device, self.batch_size = net, device, batch_size

    @torch.no_grad()
    def _logits(self, x) -> torch.Tensor:
        self.net.eval()
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
        return torch.cat([self.net(x[i:i + self.batch_size].to(self.device)).cpu()
                          for i in range(0, len(x), self.batch_size)])

    def scores(self, x) -> np.ndarray:
        return torch.softmax(self._logits(x), dim=-1).numpy()

    def predict(self, x) -> np.ndarray:
        return self._logits(x).argmax(-1).numpy()


def fit_finetune(model: nn.Module, x, y, num_classes: int | None = None, val_x=None, val_y=None,
                 seed: int = 0, epochs: int = 20, lr: float = 1e-4, weight_decay: float = 1e-2,
                 batch_size: int = 64, patience: int = 5, pooling: str = "max", device=None,
                 **_):
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    device = device or next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    net = FineTuned(copy.deepcopy(model), num_classes_of(y.numpy(), num_classes), pooling)
    net.requires_grad_(True)   # averaged copies are frozen during pretraining
    with torch.no_grad():
        bound = 1 / np.sqrt(net.head.in_features)
        net.head.weight.uniform_(-bound, bound, generator=gen)
        net.head.bias.uniform_(-bound, bound, generator=gen)
    net.to(device)
    clf = FineTunedClassifier(net, device, max(batch_size, 256))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, stale = -1.0, None, 0
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(net(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val_x is None or len(val_x) == 0:
            continue
        acc = float((clf.predict(val_x) == np.asarray(val_y)).mean())
        if acc > best:
            best, best_state, stale = acc, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return clf
