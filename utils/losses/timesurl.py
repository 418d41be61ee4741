"""TimesURL's objective (Liu & Chen, AAAI 2024): DualCon + time reconstruction.

DualCon is TS2Vec's hierarchical contrastive loss whose negatives are enlarged, at every
max-pooled scale, with two kinds of Universum hard negatives made by mixup in
representation space (the anchor weighted by lambda <= 0.5, so the mix lies nearer the
negative side):

- temporal-wise Universum  u[i,t] = lambda * z[i,t] + (1 - lambda) * z[i,pi(t)]
- instance-wise Universum  u[i,t] = lambda * z[i,t] + (1 - lambda) * z[sigma(i),t]

with pi, sigma random permutations (pi shared by the batch), drawn anew for each view and
scale as in the official code (which does not exclude fixed points). They are made for
both views and appended to the candidates of the temporal and instance terms
(only real representations act as anchors). Time reconstruction is the MSE between the
input and its reconstruction from the segment-masked input, on the masked entries only,
averaged over the two views. Total (official code): contrastive_weight * DualCon +
recon_weight * Recon, with contrastive_weight 0.01 and recon_weight 1, alpha 0.8 and
lambda 0.2 in the official code; with the official time-stamp split (models/ssl/timesurl.py)
the totals of the two subsets are summed.
"""
from __future__ import annotations

import torch
from torch import nn

from utils.losses.precision import fp32
from utils.losses.ts2vec import hierarchical_contrastive_loss, info_nce_pairs


def temporal_universum(z: torch.Tensor, lam: float) -> torch.Tensor:
    """z [B, T, D] -> mix of each step with the step given by one random permutation of the
    time steps, shared by the batch (official code; a step may be paired with itself)."""
    return lam * z + (1 - lam) * z[:, torch.randperm(z.size(1), device=z.device)]


def instance_universum(z: torch.Tensor, lam: float) -> torch.Tensor:
    """z [B, T, D] -> mix of each series with the series given by a random permutation of
    the batch at the same step (official code; a series may be paired with itself)."""
    return lam * z + (1 - lam) * z[torch.randperm(z.size(0), device=z.device)]


def dual_instance_loss(z1, z2, lam: float = 0.2, temperature: float = 1.0):
    if z1.size(0) == 1:
        return z1.new_tensor(0.0)
    extra = torch.cat([instance_universum(z1, lam), instance_universum(z2, lam)], dim=0)
    return info_nce_pairs(z1.transpose(0, 1), z2.transpose(0, 1), extra.transpose(0, 1),
                          temperature)


def dual_temporal_loss(z1, z2, lam: float = 0.2, temperature: float = 1.0):
    if z1.size(1) == 1:
        return z1.new_tensor(0.0)
    extra = torch.cat([temporal_universum(z1, lam), temporal_universum(z2, lam)], dim=1)
    return info_nce_pairs(z1, z2, extra, temperature)


@fp32
def masked_mse(target: torch.Tensor, recon: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``mask`` is True (0 if there are none)."""
    m = mask.to(recon.dtype)
    return ((target - recon) ** 2 * m).sum() / m.sum().clamp_min(1.0)


class TimesURLLoss(nn.Module):
    """loss(outputs, batch) with outputs z1, z2 [B, T, D] (overlapping views), and for the
    reconstruction recon1/recon2, target1/target2 [B, T, C], rmask1/rmask2 [B, T, C]
    (True = masked entry to reconstruct); or outputs {"pairs": [such dicts]} (the two
    time-stamp subsets of the official code), whose losses are summed.
    Returns {"loss", "contrastive", "recon"}."""

    def __init__(self, alpha: float = 0.8, universum_lambda: float = 0.2,
                 temperature: float = 1.0, temporal_unit: int = 0,
                 contrastive_weight: float = 0.01, recon_weight: float = 1.0):
        super().__init__()
        if not 0 < universum_lambda <= 0.5:
            raise ValueError(f"universum_lambda must lie in (0, 0.5] so the Universum stays "
                             f"nearer the negatives, got {universum_lambda}")
        self.alpha, self.lam, self.temperature = alpha, universum_lambda, temperature
        self.temporal_unit = temporal_unit
        self.contrastive_weight, self.recon_weight = contrastive_weight, recon_weight

    def _one(self, outputs: dict):
        kw = dict(lam=self.lam, temperature=self.temperature)
        con = hierarchical_contrastive_loss(
            outputs["z1"], outputs["z2"], self.alpha, self.temporal_unit,
            instance_fn=lambda a, b: dual_instance_loss(a, b, **kw),
            temporal_fn=lambda a, b: dual_temporal_loss(a, b, **kw))
        rec = (masked_mse(outputs["target1"], outputs["recon1"], outputs["rmask1"])
               + masked_mse(outputs["target2"], outputs["recon2"], outputs["rmask2"])) / 2
        return con, rec

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        # the official code sums the loss over the two time-stamp subsets of a batch
        parts = [self._one(o) for o in outputs["pairs"]] if "pairs" in outputs \
            else [self._one(outputs)]
        con = sum(p[0] for p in parts)
        rec = sum(p[1] for p in parts)
        total = self.contrastive_weight * con + self.recon_weight * rec
        return {"loss": total, "contrastive": con.detach(), "recon": rec.detach()}
