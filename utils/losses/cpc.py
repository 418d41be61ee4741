"""Contrastive Predictive Coding's InfoNCE with negatives from the batch (van den Oord et al.
2018)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


@fp32
def cpc_info_nce(pred: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CPC's InfoNCE (van den Oord et al. 2018, Eq. 4) with negatives from the batch.

    pred [B, T, K, D]: W_k c_t for k = 1..K; z [B, T, D]: encoded steps z_t.
    The score of a candidate z is f = z^T W_k c_t. For each k, each t with t + k < T and
    each sequence b the positive is z[b, t+k]; the candidates are every encoded step of
    every sequence of the batch (B T samples of the marginal p(z), the paper's proposal
    distribution), so the N - 1 = B T - 1 others are the negatives. Returns (mean loss over
    k, t, b; accuracy of picking the positive)."""
    B, T, K, D = pred.shape
    cands = z.reshape(B * T, D)
    losses, hits, count = [], 0.0, 0
    for k in range(1, K + 1):
        if T - k <= 0:
            break
        p = pred[:, : T - k, k - 1].reshape(-1, D)           # rows (b, t), t < T - k
        logits = p @ cands.t()                                # (B (T-k)) x (B T)
        b = torch.arange(B, device=z.device).view(-1, 1)
        t = torch.arange(T - k, device=z.device).view(1, -1)
        target = (b * T + t + k).reshape(-1)                  # index of z[b, t+k]
        losses.append(F.cross_entropy(logits, target, reduction="sum"))
        hits += float((logits.argmax(-1) == target).sum())
        count += logits.size(0)
    if not losses:
        raise ValueError(f"CPC needs at least 2 encoded steps to predict the future, got T={T}; "
                         "use longer windows or fewer/lower strides in model.strides")
    return torch.stack(losses).sum() / count, z.new_tensor(hits / count)


class CPCLoss(nn.Module):
    def __init__(self):   # explicit: the builder passes data sizes only to named arguments
        super().__init__()

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        loss, acc = cpc_info_nce(outputs["pred"], outputs["z"])
        return {"loss": loss, "accuracy": acc}
