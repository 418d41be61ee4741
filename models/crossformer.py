"""Crossformer (Zhang & Yan, ICLR 2023): DSW embedding + learnable position, a hierarchical
encoder of two-stage-attention layers with segment merging, and a decoder whose layers each
predict the horizon from one encoder scale; the predictions are summed."""
from __future__ import annotations

import math

import torch
from torch import nn

from layers.crossformer_layers import CrossDecoder, CrossEncoder, DSWEmbedding
from models.base import BaseModel


class Crossformer(BaseModel):
    def __init__(self, enc_in: int, seq_len: int, pred_len: int, seg_len: int = 6,
                 win_size: int = 2, factor: int = 10, d_model: int = 256, d_ff: int = 512,
                 n_heads: int = 4, e_layers: int = 3, dropout: float = 0.2,
                 baseline: bool = False):
        super().__init__()
        self.seq_len, self.pred_len, self.baseline = seq_len, pred_len, baseline
        # pad the input (with its first value, at the front) and the output to whole segments
        in_seg = math.ceil(seq_len / seg_len)
        out_seg = math.ceil(pred_len / seg_len)
        self.in_pad = in_seg * seg_len - seq_len

        self.embedding = DSWEmbedding(seg_len, d_model)
        self.enc_pos = nn.Parameter(torch.randn(1, enc_in, in_seg, d_model))
        self.pre_norm = nn.LayerNorm(d_model)
        self.encoder = CrossEncoder(e_layers, win_size, d_model, n_heads, d_ff, 1, dropout,
                                    in_seg, factor)
        self.dec_pos = nn.Parameter(torch.randn(1, enc_in, out_seg, d_model))
        self.decoder = CrossDecoder(seg_len, e_layers + 1, d_model, n_heads, d_ff, dropout,
                                    out_seg, factor)

    def forward(self, x, x_mark=None, x_dec=None, y_mark=None):
        """x [B, seq_len, D] -> [B, pred_len, D]."""
        base = x.mean(dim=1, keepdim=True) if self.baseline else 0.0
        if self.in_pad:
            x = torch.cat([x[:, :1].expand(-1, self.in_pad, -1), x], dim=1)
        z = self.pre_norm(self.embedding(x) + self.enc_pos)
        enc_outs = self.encoder(z)
        dec_in = self.dec_pos.expand(x.shape[0], -1, -1, -1)
        out = self.decoder(dec_in, enc_outs)
        return base + out[:, : self.pred_len]
