"""Losses of the forecasting task (called as ``loss(outputs, batch)``): the forecast MSE
and PatchTST's masked-patch pretraining objective."""
from __future__ import annotations

import torch


class ForecastMSE:
    """Mean squared error between the forecast ``outputs["pred"]`` [B, pred_len, C_out] and
    the last pred_len steps of ``batch["y"]`` (its first label_len steps are the start token)."""

    def __call__(self, outputs, batch) -> torch.Tensor:
        pred = outputs["pred"] if isinstance(outputs, dict) else outputs
        true = outputs.get("true") if isinstance(outputs, dict) else None
        if true is None:
            true = batch["y"][:, -pred.shape[1]:]
        if pred.shape != true.shape:
            raise ValueError(f"forecast shape {tuple(pred.shape)} does not match the target "
                             f"{tuple(true.shape)}")
        pred = pred.float()                       # the error in fp32 under mixed precision
        return torch.mean((pred - true.to(pred.dtype)) ** 2)


class MaskedPatchMSE:
    """PatchTST pretraining loss: MSE per patch, averaged over the masked patches only.
    outputs: pred / target [B, C, N, patch_len], mask [B, C, N] (True = masked)."""

    def __call__(self, outputs, batch=None) -> torch.Tensor:
        per_patch = ((outputs["pred"].float() - outputs["target"].float()) ** 2).mean(dim=-1)
        mask = outputs["mask"].to(per_patch.dtype)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
