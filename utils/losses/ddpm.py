"""DDPM's simplified objective (Ho, Jain & Abbeel, NeurIPS 2020, eq. 14): the mean squared
error between the true and the predicted noise, here weighted per entry so that a conditional
imputation model (CSDI, Tashiro et al. 2021) is scored on its hidden entries only."""
from __future__ import annotations

import torch


def denoising_mse(eps_pred: torch.Tensor, eps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(weight * (eps_pred - eps)^2) / sum(weight), in float32; a zero total weight gives 0."""
    weight = weight.float().expand_as(eps)
    squared = (eps_pred.float() - eps.float()) ** 2
    return (weight * squared).sum() / weight.sum().clamp_min(1.0)


class DenoisingMSE:
    """L_simple on a DDPM's outputs {"eps_pred", "eps", "weight"} (models/ddpm.py)."""

    def __call__(self, outputs: dict, batch: dict | None = None) -> torch.Tensor:
        return denoising_mse(outputs["eps_pred"], outputs["eps"], outputs["weight"])
