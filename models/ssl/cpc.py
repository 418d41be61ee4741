"""Contrastive Predictive Coding (van den Oord, Li & Vinyals 2018), for 1-D signals.

g_enc: strided 1-D convolutions (kernel = 2 x stride, ReLU) map x [B, T, C] to z [B, T', D_z];
g_ar:  a GRU summarises z_{<=t} into the context c_t [B, T', D_c];
W_k:   one linear map per future step k = 1..K predicts z_{t+k} as W_k c_t; the loss
       (utils.losses.cpc.CPCLoss) is InfoNCE whose negatives are the other encoded steps
       of all sequences in the batch (samples of the marginal p(z), the paper's proposal).

The audio model of the paper uses strides (5, 4, 2, 2, 2) = 160x at 16 kHz (10 ms steps),
512 conv channels, a 256-unit GRU and K = 12. ECG at 360 Hz needs far less downsampling;
conf/model/cpc.yaml keeps the layer shapes and K and uses fewer stride-2 layers.

``encode`` returns the context vectors c (the representation the paper evaluates):
pooled over time ("max" / "last") or per encoded step ([B, T', D_c], T' = T / prod(strides)).
"""
from __future__ import annotations

import torch
from torch import nn

from layers.encoders import pool
from models.ssl.base import RepresentationModel


class CPCEncoder(nn.Module):
    """g_enc: conv (kernel k_i, stride s_i) + ReLU per layer, channels last in/out. No batch
    normalisation: statistics shared across the batch would leak information between the
    sequences that serve as each other's negatives."""

    def __init__(self, in_channels: int, hidden: int, strides, kernel_sizes):
        super().__init__()
        if len(strides) != len(kernel_sizes):
            raise ValueError(f"model.strides {list(strides)} and model.kernel_sizes "
                             f"{list(kernel_sizes)} must have the same length")
        layers, ch = [], in_channels
        for s, k in zip(strides, kernel_sizes):
            # pad (k - s + 1) // 2: about T / s output steps, so short windows keep their steps
            layers += [nn.Conv1d(ch, hidden, k, stride=s, padding=(k - s + 1) // 2),
                       nn.ReLU()]
            ch = hidden
        self.net = nn.Sequential(*layers)
        self.downsample = int(torch.tensor(list(strides)).prod())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class CPC(RepresentationModel):
    def __init__(self, in_channels: int, enc_dim: int = 512, context_dim: int = 256,
                 strides=(4, 2, 2), kernel_sizes=(8, 4, 4), pred_steps: int = 12):
        super().__init__()
        self.g_enc = CPCEncoder(in_channels, enc_dim, strides, kernel_sizes)
        self.g_ar = nn.GRU(enc_dim, context_dim, batch_first=True)
        self.pred_steps = pred_steps
        # W_1..W_K stacked; no bias: the score is the bilinear z^T W_k c_t of the paper
        self.W = nn.Linear(context_dim, enc_dim * pred_steps, bias=False)
        self.repr_dim = context_dim

    def _context(self, x: torch.Tensor):
        x = torch.nan_to_num(x, nan=0.0)
        z = self.g_enc(x)
        c, _ = self.g_ar(z)
        return z, c

    def forward(self, batch: dict) -> dict:
        z, c = self._context(batch["x"])
        B, T, D = z.shape
        K = min(self.pred_steps, T - 1)   # short windows predict as far as they reach
        pred = self.W(c).view(B, T, self.pred_steps, D)[:, :, :K]
        return {"z": z, "c": c, "pred": pred}

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        _, c = self._context(x)
        return pool(c, pooling)
