"""Observed steps of a batch of series: NaN entries and steps a bool mask [B, T] (True = keep)
leaves out count as unobserved. Shared by the encoders so padded and missing steps never reach
the observed ones' outputs."""
from __future__ import annotations

import torch


def observed_steps(x: torch.Tensor, mask: torch.Tensor | str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T, C] -> (x with NaN entries and unobserved steps zeroed, bool [B, T] True =
    observed). A string mask (a TS2Vec mask mode) is not a step mask and is ignored."""
    observed = ~torch.isnan(x).any(dim=-1)
    if mask is not None and not isinstance(mask, str):
        observed = observed & mask.to(torch.bool)
    return torch.nan_to_num(x, nan=0.0) * observed.unsqueeze(-1).to(x.dtype), observed


def zero_unobserved(h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """h [B, C, T] with the unobserved steps (keep [B, 1, T] = 0) set to zero."""
    return h if keep is None else h * keep


def observed_mean(h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Mean of h [B, C, T] over the observed steps -> [B, C, 1]."""
    if keep is None:
        return h.mean(dim=-1, keepdim=True)
    return (h * keep).sum(dim=-1, keepdim=True) / keep.sum(dim=-1, keepdim=True).clamp(min=1)
