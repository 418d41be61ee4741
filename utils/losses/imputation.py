"""Loss of the imputation task (called as ``loss(outputs, batch)``)."""
from __future__ import annotations

import torch


class HiddenMSE:
    """Mean squared error over the hidden values only (Time-Series-Library's imputation
    objective): outputs ``pred`` and ``true`` [B, T, C], ``hidden`` bool [B, T, C]."""

    def __call__(self, outputs, batch=None) -> torch.Tensor:
        pred, true, hidden = outputs["pred"], outputs["true"], outputs["hidden"]
        if pred.shape != true.shape:
            raise ValueError(f"imputation shape {tuple(pred.shape)} does not match the series "
                             f"{tuple(true.shape)}")
        err = (pred.float() - true.float()) ** 2
        w = hidden.to(err.dtype)
        return (err * w).sum() / w.sum().clamp_min(1.0)
