"""Transformer encoder classifier for time series.

Tokens are either single time steps (``embedding=point``, a linear map of the C channels)
or non-overlapping patches of ``patch_len`` steps (``embedding=patch``, as in PatchTST /
ViT, which shortens the sequence the attention sees). Learned positional embeddings, a
pre-norm Transformer encoder, mean pooling over tokens and a linear head.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.base import BaseModel


class TransformerClassifier(BaseModel):
    def __init__(self, in_channels: int, seq_len: int, num_classes: int, embedding: str = "patch",
                 patch_len: int = 8, d_model: int = 64, n_heads: int = 4, n_layers: int = 3,
                 d_ff: int = 128, dropout: float = 0.1, extra_features: int = 0):
        super().__init__()
        if embedding not in ("patch", "point"):
            raise ValueError(f"model.embedding={embedding} is not valid; use patch or point")
        self.embedding = embedding
        self.patch_len = patch_len if embedding == "patch" else 1
        n_tokens = math.ceil(seq_len / self.patch_len)
        self.proj = nn.Linear(in_channels * self.patch_len, d_model)
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.extra_features = extra_features
        self.fc = nn.Linear(d_model + extra_features, num_classes)
        self.seq_len = seq_len

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> token embeddings [B, N, d_model] (T padded to a multiple of patch_len)."""
        b, t, c = x.shape
        if t > self.pos.shape[1] * self.patch_len:
            raise ValueError(f"series of length {t} is longer than the model's seq_len "
                             f"{self.seq_len}; rebuild the model with the data's length")
        pad = (-t) % self.patch_len
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        n = x.shape[1] // self.patch_len
        x = x.reshape(b, n, self.patch_len * c)
        return self.proj(x) + self.pos[:, :n]

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(self.encoder(self.tokens(x))).mean(dim=1)
        if self.extra_features:
            if features is None:
                raise ValueError(f"this model was built with extra_features={self.extra_features} "
                                 "but the batch has no 'features'")
            h = torch.cat([h, features.to(h.dtype)], dim=-1)
        return self.fc(h)
