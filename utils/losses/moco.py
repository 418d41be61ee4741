"""MoCo v2's InfoNCE against a queue of keys (He et al. 2020; Chen et al. 2020). The queue
lives in the model as a buffer, so checkpoints hold it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


@fp32
def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                   temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE: query q [N, D] against its key k [N, D] (positive, no gradient) and
    the K queued keys [K, D] (negatives); vectors are L2-normalised."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1).detach()
    queue = F.normalize(queue.float(), dim=1).detach()
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.t()
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class MoCoLoss(nn.Module):
    def __init__(self, temperature: float = 0.2):
        super().__init__()
        self.temperature = temperature

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return info_nce_queue(outputs["q"], outputs["k"], outputs["queue"], self.temperature)
