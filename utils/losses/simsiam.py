"""SimSiam's symmetrised negative cosine with stop-gradient (Chen & He, CVPR 2021)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


@fp32
def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)), mean over the batch."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()


class SimSiamLoss(nn.Module):
    """L = D(p1, z2) / 2 + D(p2, z1) / 2, in [-1, 1]."""

    def __init__(self):   # explicit: the Exp passes data sizes only to arguments it sees
        super().__init__()

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return 0.5 * negative_cosine(outputs["p1"], outputs["z2"]) + \
            0.5 * negative_cosine(outputs["p2"], outputs["z1"])
