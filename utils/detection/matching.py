"""Bipartite matching of predictions to targets (DETR's Hungarian step), solved by scipy."""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment


def hungarian(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment for a [N, M] cost (N predictions, M targets):
    (prediction indices, target indices), each of length min(N, M), sorted by prediction."""
    if cost.numel() == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    rows, cols = linear_sum_assignment(cost.detach().float().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
