"""Pieces shared by the explanation methods: calling the model, picking the class score,
stretching a map to the input's length and reducing [T, C] maps to one value per step."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn


def forward_logits(model: nn.Module, x: torch.Tensor,
                   forward_kwargs: Mapping[str, Any] | None = None) -> torch.Tensor:
    """``model(x, **forward_kwargs)`` checked to be class scores [B, num_classes]."""
    out = model(x, **dict(forward_kwargs or {}))
    if not torch.is_tensor(out) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"explanations need a classifier returning scores [batch, classes]; "
                         f"the model returned {shape} for an input of shape {tuple(x.shape)}")
    return out


def target_scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Score y^c (before the softmax, as Grad-CAM defines it) of each sample's target class."""
    target = torch.as_tensor(target, device=logits.device).long().reshape(-1)
    if target.numel() != logits.shape[0]:
        raise ValueError(f"need one target class per sample: {target.numel()} targets for "
                         f"{logits.shape[0]} samples")
    if target.min() < 0 or target.max() >= logits.shape[1]:
        raise ValueError(f"target classes must lie in [0, {logits.shape[1] - 1}], "
                         f"got {target.tolist()}")
    return logits.gather(1, target[:, None])[:, 0]


def upsample_to(maps: torch.Tensor, length: int) -> torch.Tensor:
    """[B, T'] -> [B, length] by 1-D linear interpolation (identity when T' == length)."""
    if maps.shape[-1] == length:
        return maps
    return F.interpolate(maps[:, None], size=length, mode="linear", align_corners=False)[:, 0]


def per_step(maps: torch.Tensor) -> torch.Tensor:
    """Input-space maps [B, T, C] -> one saliency per time step [B, T]: the largest
    magnitude over channels (Simonyan et al. 2014's reduction of gradient maps). [B, T]
    maps (CAM, Grad-CAM) pass through unchanged."""
    if maps.dim() == 2:
        return maps
    return maps.abs().amax(dim=-1)
