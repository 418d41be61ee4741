"""Reversible instance normalisation (Kim et al., ICLR 2022).

Each series of a batch is normalised by its own mean and standard deviation over time
(optionally shifted by the last value instead of the mean) before the model, and the model's
output is mapped back with the same statistics, so a distribution shift between windows
does not have to be learned. Channels-last: x [B, L, C].
"""
from __future__ import annotations

import torch
from torch import nn


class RevIN(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True,
                 subtract_last: bool = False):
        super().__init__()
        self.eps, self.affine, self.subtract_last = eps, affine, subtract_last
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        self.center = self.stdev = None

    def forward(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode == "norm":
            return self.normalize(x)
        if mode == "denorm":
            return self.denormalize(x)
        raise ValueError(f"RevIN mode must be 'norm' or 'denorm', got '{mode}'")

    def normalize(self, x):
        # statistics are constants of the instance: no gradient flows through them
        self.center = (x[:, -1:, :] if self.subtract_last else x.mean(dim=1, keepdim=True)).detach()
        self.stdev = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        return self.normalize_like(x)

    def normalize_like(self, x):
        """x (e.g. the true future of the window) normalised with the statistics ``normalize``
        took from the input window."""
        if self.center is None:
            raise RuntimeError("RevIN.normalize_like called before normalize")
        x = (x - self.center) / self.stdev
        if self.affine:
            x = x * self.weight + self.bias
        return x

    def denormalize(self, x):
        if self.center is None:
            raise RuntimeError("RevIN.denormalize called before normalize")
        if self.affine:
            x = (x - self.bias) / (self.weight + self.eps * self.eps)
        return x * self.stdev + self.center
