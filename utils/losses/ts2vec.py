"""TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022, Sec. 3.3).

Two views z1, z2 [B, T, D] are the representations of the same time steps seen in two
overlapping crops. At each scale:

- instance term: for time step t, the 2B vectors {z1[i,t], z2[i,t]} are contrasted; the
  positive of z1[i,t] is z2[i,t] and every other vector at t is a negative;
- temporal term: for series i, the 2T vectors {z1[i,t], z2[i,t]} are contrasted; the
  positive of z1[i,t] is z2[i,t] and every other time step of that series is a negative.

Similarities are raw dot products (as the official code). The views are then max-pooled
over time with kernel 2 and the terms repeated until one time step is left, where only
the instance term applies. The loss is the mean over scales of
alpha * instance + (1 - alpha) * temporal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


@fp32
def info_nce_pairs(a: torch.Tensor, b: torch.Tensor, extra: torch.Tensor | None = None,
                   temperature: float = 1.0) -> torch.Tensor:
    """Contrast within groups. a, b [G, N, D]: a[g, n] and b[g, n] are positives of each
    other; every other vector of the same group in a or b (and every vector of ``extra``
    [G, M, D], e.g. hard negatives) is a negative. Returns the mean over the 2N anchors of
    each group and over groups of -log softmax(positive)."""
    n = a.size(1)
    z = torch.cat([a, b], dim=1)                                  # G x 2N x D
    cand = z if extra is None else torch.cat([z, extra], dim=1)   # G x (2N+M) x D
    sim = torch.matmul(z, cand.transpose(1, 2)) / temperature     # G x 2N x (2N+M)
    self_sim = torch.eye(2 * n, cand.size(1), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_sim, float("-inf"))                # an anchor is not its own negative
    logp = F.log_softmax(sim, dim=-1)
    idx = torch.arange(n, device=z.device)
    pos_a = logp[:, idx, n + idx]      # anchors from a, positives in b
    pos_b = logp[:, n + idx, idx]      # anchors from b, positives in a
    return -(pos_a.mean() + pos_b.mean()) / 2


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, **kw) -> torch.Tensor:
    if z1.size(0) == 1:       # no other instance, no negatives
        return z1.new_tensor(0.0)
    return info_nce_pairs(z1.transpose(0, 1), z2.transpose(0, 1), **kw)


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, **kw) -> torch.Tensor:
    if z1.size(1) == 1:
        return z1.new_tensor(0.0)
    return info_nce_pairs(z1, z2, **kw)


def _halve(z: torch.Tensor) -> torch.Tensor:
    return F.max_pool1d(z.transpose(1, 2), kernel_size=2).transpose(1, 2)


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5,
                                  temporal_unit: int = 0, instance_fn=instance_contrastive_loss,
                                  temporal_fn=temporal_contrastive_loss) -> torch.Tensor:
    """Mean over max-pooled scales of alpha * instance + (1 - alpha) * temporal.
    ``temporal_unit``: the temporal term starts at this scale (saves time on long series).
    ``instance_fn``/``temporal_fn`` let TimesURL plug in its Universum-augmented terms."""
    if z1.shape != z2.shape:
        raise ValueError(f"the two views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    loss = z1.new_tensor(0.0)
    depth = 0
    while z1.size(1) > 1:
        if alpha != 0:
            loss = loss + alpha * instance_fn(z1, z2)
        if depth >= temporal_unit and alpha != 1:
            loss = loss + (1 - alpha) * temporal_fn(z1, z2)
        depth += 1
        z1, z2 = _halve(z1), _halve(z2)
    if z1.size(1) == 1:
        if alpha != 0:
            loss = loss + alpha * instance_fn(z1, z2)
        depth += 1
    return loss / depth


class HierarchicalContrastiveLoss(nn.Module):
    """loss(outputs, batch) on outputs["z1"], outputs["z2"] [B, T, D] (the two views'
    representations of their overlapping time steps)."""

    def __init__(self, alpha: float = 0.5, temporal_unit: int = 0):
        super().__init__()
        self.alpha, self.temporal_unit = alpha, temporal_unit

    def forward(self, outputs: dict, batch: dict | None = None) -> torch.Tensor:
        return hierarchical_contrastive_loss(outputs["z1"], outputs["z2"], self.alpha,
                                             self.temporal_unit)
