"""BYOL's normalised MSE between the online prediction and the target projection
(Grill et al., NeurIPS 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


@fp32
def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL: || p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z), mean over the batch; z is a target
    (no gradient)."""
    p = F.normalize(p.float(), dim=-1)
    z = F.normalize(z.float(), dim=-1).detach()
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


class BYOLLoss(nn.Module):
    """Symmetrised: L(p1, z2') + L(p2, z1') as in the paper (each term in [0, 4])."""

    def __init__(self):   # explicit: the Exp passes data sizes only to arguments it sees
        super().__init__()

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return normalized_mse(outputs["p1"], outputs["t2"]) + normalized_mse(outputs["p2"], outputs["t1"])
