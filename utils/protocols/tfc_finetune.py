"""TF-C's fine-tuning protocol (Zhang et al. 2022, official trainer): a copy of the pretrained
TF-C model and the paper's classifier on [z^T, z^F] (``model.make_head``) trained together on
CE(head([z^T, z^F]), y) + lam (L_T + L_F) + (1 - lam) L_C (``model.finetune_loss`` with the
pretext loss of utils/losses/tfc.py) with Adam (lr 3e-4, betas 0.9/0.99, weight decay 3e-4).
With a validation split the epoch with the best validation accuracy is kept; without one,
the last epoch. Same call as ``finetune``; only TF-C models (model=tfc) have what it needs.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.tfc import TFCLoss

from .base import train_keep_best


class TFCFineTuned(nn.Module):
    """The fine-tuned copy of the model and its classifier head, trained as one module."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model, self.head = model, head


class TFCClassifier:
    scores_are_probs = True

    def __init__(self, net: TFCFineTuned, device, batch_size: int = 256):
        self.net, self.device, self.batch_size = net, device, batch_size

    @torch.no_grad()
    def _logits(self, x) -> torch.Tensor:
        self.net.eval()
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
        return torch.cat([self.net.head(self.net.model.embed(x[i:i + self.batch_size].to(self.device))).cpu()
                          for i in range(0, len(x), self.batch_size)])

    def scores(self, x) -> np.ndarray:
        return torch.softmax(self._logits(x), dim=-1).numpy()

    def predict(self, x) -> np.ndarray:
        return self._logits(x).argmax(-1).numpy()


def fit_tfc_finetune(model, x, y, num_classes: int | None = None, val_x=None, val_y=None,
                     seed: int = 0, epochs: int = 40, lr: float = 3e-4, betas=(0.9, 0.99),
                     weight_decay: float = 3e-4, batch_size: int = 60, lam: float = 0.2,
                     delta: float = 1.0, temperature: float = 0.2, hinge: bool = True,
                     device=None, **_) -> TFCClassifier:
    if not hasattr(model, "finetune_loss"):
        raise TypeError(f"task.protocol=tfc_finetune fine-tunes TF-C models only (model=tfc); "
                        f"{type(model).__name__} has no finetune_loss: use protocol=finetune")
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    k = int(num_classes or int(y.max()) + 1)
    device = device or next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    copy_ = copy.deepcopy(model).to(device)
    copy_.requires_grad_(True)
    torch.manual_seed(seed)
    net = TFCFineTuned(copy_, copy_.make_head(k).to(device))
    pretext = TFCLoss(temperature, lam, delta, hinge)
    params = list(net.model.parameters()) + list(net.head.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    clf = TFCClassifier(net, device)

    def loss_fn(xb, yb):
        loss_pre, z = net.model.finetune_loss(xb, pretext)
        return F.cross_entropy(net.head(z), yb) + loss_pre

    has_val = val_x is not None and len(val_x) > 0
    # NT-Xent and BatchNorm need two samples: a last batch of one is skipped
    train_keep_best(net, opt, x, y, None, epochs=epochs, batch_size=batch_size, generator=gen,
                    predict_val=(lambda: clf.predict(val_x)) if has_val else None, val_y=val_y,
                    device=device, loss_fn=loss_fn, min_batch=2)
    return clf
