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
from torch import nn

from .base import num_classes_of, train_keep_best


class FineTuned(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, pooling: str = "max"):
        super().__init__()
        if not hasattr(backbone, "embed") or not hasattr(backbone, "repr_dim"):
            raise TypeError(f"{type(backbone).__name__} has no embed(x, pooling)/repr_dim; "
                            "the finetune protocol needs them (see models/ssl/base.py)")
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
    has_val = val_x is not None and len(val_x) > 0
    train_keep_best(net, opt, x, y, net, epochs=epochs, batch_size=batch_size, generator=gen,
                    predict_val=(lambda: clf.predict(val_x)) if has_val else None,
                    val_y=val_y, patience=patience, device=device)
    return clf
