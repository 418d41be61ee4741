"""TF-C's pretraining objective (Zhang et al., NeurIPS 2022): NT-Xent within the time and the
frequency domain plus the time-frequency consistency term."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import gather
from utils.losses.simclr import nt_xent


def tfc_consistency(s_tf: torch.Tensor, s_pairs: list[torch.Tensor], delta: float = 1.0,
                    hinge: bool = True) -> torch.Tensor:
    """TF-C's time-frequency consistency term (Zhang et al. 2022, Eq. 3), triplet style:
    L_C = sum over pairs of (S^TF - S^pair + delta), where S^TF is the contrastive distance
    between z^T and z^F of the same (unaugmented) input and S^pair those of the three
    pairs involving an augmented view: (z^T, z~^F), (z~^T, z^F), (z~^T, z~^F).

    ``hinge`` (default) takes max(0, .) of each term, as a triplet loss with margin delta:
    once S^pair exceeds S^TF by delta the term stops pushing. Without it (the equation as
    printed, the official code's first version) the loss is minimised by driving S^pair up
    without bound, i.e. by pushing augmented views apart, against L_T and L_F."""
    terms = [s_tf - s + delta for s in s_pairs]
    if hinge:
        terms = [F.relu(t) for t in terms]
    return sum(terms)


class TFCLoss(nn.Module):
    """L = lam (L_T + L_F) + (1 - lam) L_C (TF-C pretraining, as the official code's
    lam = 0.2, delta = 1, NT-Xent with cosine similarity at temperature 0.2)."""

    def __init__(self, temperature: float = 0.2, lam: float = 0.2, delta: float = 1.0,
                 hinge: bool = True):
        super().__init__()
        self.temperature, self.lam, self.delta, self.hinge = temperature, lam, delta, hinge

    def _d(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return nt_xent(a, b, temperature=self.temperature)

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        o = {k: gather(v) for k, v in outputs.items()}    # negatives from every process's batch
        loss_t = self._d(o["h_t"], o["h_t_aug"])
        loss_f = self._d(o["h_f"], o["h_f_aug"])
        s_tf = self._d(o["z_t"], o["z_f"])
        pairs = [self._d(o["z_t"], o["z_f_aug"]), self._d(o["z_t_aug"], o["z_f"]),
                 self._d(o["z_t_aug"], o["z_f_aug"])]
        loss_c = tfc_consistency(s_tf, pairs, self.delta, self.hinge)
        loss = self.lam * (loss_t + loss_f) + (1 - self.lam) * loss_c
        return {"loss": loss, "time": loss_t, "freq": loss_f, "consistency": loss_c, "tf": s_tf}
