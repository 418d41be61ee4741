"""MAE's reconstruction loss on the masked patches (He et al., CVPR 2022)."""
from __future__ import annotations

import torch
from torch import nn

from utils.losses.precision import fp32


@fp32
def masked_patch_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                     norm_target: bool = True) -> torch.Tensor:
    """MAE loss (He et al. 2022): mean squared error per patch, averaged over the masked
    patches only. pred/target [B, N, P]; mask [B, N] (1 = masked). ``norm_target``:
    each target patch normalised by its own mean and variance (the paper's better variant)."""
    if norm_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, unbiased=False)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


class MAELoss(nn.Module):
    def __init__(self, norm_target: bool = True):
        super().__init__()
        self.norm_target = norm_target

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        loss = masked_patch_mse(outputs["pred"], outputs["target"], outputs["mask"], self.norm_target)
        return {"loss": loss}
