"""SimCLR's NT-Xent (Chen et al., ICML 2020), also the contrastive distance of TF-C and the
unsupervised term of the semi-supervised hybrid."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import gather
from utils.losses.precision import fp32


@fp32
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views: for each of the 2N projections the other view of
    its series is the positive and the remaining 2N - 2 are negatives; cosine similarity /
    temperature; mean over the 2N anchors."""
    n = z1.size(0)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class NTXentLoss(nn.Module):
    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        # the global batch of all processes: negatives from every rank (one process: as is)
        return nt_xent(gather(outputs["z1"]), gather(outputs["z2"]), self.temperature)
