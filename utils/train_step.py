"""Small helpers of the training loop that know nothing of the experiment."""
from __future__ import annotations

import torch


def split_loss(loss) -> tuple[torch.Tensor, dict]:
    """A loss is a Tensor or {"loss": Tensor, <part>: Tensor, ...}: (loss, detached parts)."""
    if isinstance(loss, dict):
        parts = {k: v.detach() for k, v in loss.items() if k != "loss" and torch.is_tensor(v)}
        return loss["loss"], parts
    return loss, {}


def batch_size_of(batch: dict) -> int:
    x = batch.get("x")
    if x is None:
        x = next(v for v in batch.values() if torch.is_tensor(v))
    return int(x.shape[0])
