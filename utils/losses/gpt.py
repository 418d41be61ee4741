"""GPT's generative pretraining objective on patches (Radford et al. 2018), as regression:
each position predicts the next patch's values (models/ssl/gpt.py shifts by one patch)."""
from __future__ import annotations

import torch
from torch import nn

from utils.losses.precision import fp32


@fp32
def next_patch_mse(pred: torch.Tensor, target: torch.Tensor, observed: torch.Tensor | None = None,
                   norm_target: bool = False) -> torch.Tensor:
    """Mean squared error over the observed values of the next patches. pred/target [B, N-1, P]
    (target = patches 1..N-1, pred from states 0..N-2); ``observed`` bool of the same shape
    (default all). ``norm_target``: each target patch normalised by the mean and variance of
    its observed values (MAE's norm_pix_loss): the model then predicts the next patch's shape
    but not its level or scale."""
    w = torch.ones_like(target) if observed is None else observed.to(target.dtype)
    if norm_target:
        n = w.sum(dim=-1, keepdim=True).clamp_min(1.0)
        mean = (target * w).sum(dim=-1, keepdim=True) / n
        var = ((target - mean) ** 2 * w).sum(dim=-1, keepdim=True) / n
        target = (target - mean) / (var + 1e-6).sqrt()
    return ((pred - target) ** 2 * w).sum() / w.sum().clamp_min(1.0)


class GPTLoss(nn.Module):
    def __init__(self, norm_target: bool = False):
        super().__init__()
        self.norm_target = norm_target

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        loss = next_patch_mse(outputs["pred"], outputs["target"], outputs.get("observed"),
                              self.norm_target)
        return {"loss": loss}
