"""Crossformer's blocks (Zhang & Yan, "Crossformer: Transformer Utilizing Cross-Dimension
Dependency for Multivariate Time Series Forecasting", ICLR 2023, Sec. 3).

Tensors are [B, D, S, d_model]: D data dimensions (channels), S segments per dimension.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from layers.attention import AttentionLayer, FullAttention


def _msa(d_model: int, n_heads: int, dropout: float) -> AttentionLayer:
    return AttentionLayer(FullAttention(False, attention_dropout=dropout), d_model, n_heads)


class DSWEmbedding(nn.Module):
    """Dimension-segment-wise embedding: each length-``seg_len`` segment of each dimension
    becomes one vector, [B, T, D] -> [B, D, T/seg_len, d_model] (T a multiple of seg_len)."""

    def __init__(self, seg_len: int, d_model: int):
        super().__init__()
        self.seg_len = seg_len
        self.linear = nn.Linear(seg_len, d_model)

    def forward(self, x):
        B, T, D = x.shape
        if T % self.seg_len:
            raise ValueError(f"series length {T} is not a multiple of seg_len={self.seg_len}")
        segments = x.transpose(1, 2).reshape(B, D, T // self.seg_len, self.seg_len)
        return self.linear(segments)


class TwoStageAttention(nn.Module):
    """Cross-time stage: self-attention among the segments of each dimension. Cross-dimension
    stage: for each segment position, ``n_routers`` learnable routers gather messages from all D
    dimensions (routers as queries) and send them back (dimensions as queries), O(D) not O(D^2)."""

    def __init__(self, n_segments: int, n_routers: int, d_model: int, n_heads: int,
                 d_ff: int | None = None, dropout: float = 0.1):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.time_attention = _msa(d_model, n_heads, dropout)
        self.dim_sender = _msa(d_model, n_heads, dropout)
        self.dim_receiver = _msa(d_model, n_heads, dropout)
        self.router = nn.Parameter(torch.randn(n_segments, n_routers, d_model))
        self.dropout = nn.Dropout(dropout)
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(d_model) for _ in range(4))
        self.mlp1 = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.mlp2 = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x):
        B, D, S, d = x.shape
        # cross-time stage, every dimension on its own
        t = x.reshape(B * D, S, d)
        t = self.norm1(t + self.dropout(self.time_attention(t, t, t)[0]))
        t = self.norm2(t + self.dropout(self.mlp1(t)))
        # cross-dimension stage through the routers, every segment position on its own
        c = t.reshape(B, D, S, d).transpose(1, 2).reshape(B * S, D, d)
        routers = self.router.repeat(B, 1, 1)                           # [B*S, n_routers, d]
        buffer = self.dim_sender(routers, c, c)[0]
        received = self.dim_receiver(c, buffer, buffer)[0]
        c = self.norm3(c + self.dropout(received))
        c = self.norm4(c + self.dropout(self.mlp2(c)))
        return c.reshape(B, S, D, d).transpose(1, 2)


class SegmentMerging(nn.Module):
    """Concatenate ``win_size`` adjacent segments (the last ones repeated when S is not a
    multiple), LayerNorm, project back to d_model: S -> ceil(S / win_size)."""

    def __init__(self, d_model: int, win_size: int):
        super().__init__()
        self.win_size = win_size
        self.norm = nn.LayerNorm(win_size * d_model)
        self.linear = nn.Linear(win_size * d_model, d_model)

    def forward(self, x):
        B, D, S, d = x.shape
        pad = (-S) % self.win_size
        if pad:
            x = torch.cat([x, x[:, :, -pad:]], dim=2)
        merged = torch.cat([x[:, :, i::self.win_size] for i in range(self.win_size)], dim=-1)
        return self.linear(self.norm(merged))


class ScaleBlock(nn.Module):
    """One encoder scale: optional segment merging, then ``depth`` TSA layers."""

    def __init__(self, win_size, d_model, n_heads, d_ff, depth, dropout, n_segments, n_routers):
        super().__init__()
        self.merge = SegmentMerging(d_model, win_size) if win_size > 1 else None
        self.layers = nn.ModuleList(TwoStageAttention(n_segments, n_routers, d_model, n_heads,
                                                      d_ff, dropout) for _ in range(depth))

    def forward(self, x):
        if self.merge is not None:
            x = self.merge(x)
        for layer in self.layers:
            x = layer(x)
        return x


class CrossEncoder(nn.Module):
    """Hierarchical encoder; returns the embedding and every scale's output (e_layers + 1)."""

    def __init__(self, e_layers, win_size, d_model, n_heads, d_ff, depth, dropout,
                 in_segments, n_routers):
        super().__init__()
        self.blocks = nn.ModuleList(
            ScaleBlock(1 if i == 0 else win_size, d_model, n_heads, d_ff, depth, dropout,
                       math.ceil(in_segments / win_size ** i), n_routers)
            for i in range(e_layers))

    def forward(self, x):
        outs = [x]
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


class CrossDecoderLayer(nn.Module):
    """TSA over the decoder segments, cross-attention to one encoder scale, MLP, and a linear
    prediction of every output segment at this scale."""

    def __init__(self, seg_len, d_model, n_heads, d_ff, dropout, out_segments, n_routers):
        super().__init__()
        self.self_attention = TwoStageAttention(out_segments, n_routers, d_model, n_heads,
                                                d_ff, dropout)
        self.cross_attention = _msa(d_model, n_heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(),
                                 nn.Linear(d_model, d_model))
        self.linear_pred = nn.Linear(d_model, seg_len)

    def forward(self, x, cross):
        B, D, S, d = x.shape
        x = self.self_attention(x).reshape(B * D, S, d)
        cross = cross.reshape(B * D, cross.shape[2], d)
        x = self.norm1(x + self.dropout(self.cross_attention(x, cross, cross)[0]))
        x = self.norm2(x + self.mlp(x)).reshape(B, D, S, d)
        return x, self.linear_pred(x)                                   # [B, D, S, seg_len]


class CrossDecoder(nn.Module):
    """One decoder layer per encoder output; the final forecast is the sum of the layers'
    predictions, [B, D, S, seg_len] -> [B, S * seg_len, D]."""

    def __init__(self, seg_len, n_layers, d_model, n_heads, d_ff, dropout, out_segments,
                 n_routers):
        super().__init__()
        self.layers = nn.ModuleList(CrossDecoderLayer(seg_len, d_model, n_heads, d_ff, dropout,
                                                      out_segments, n_routers)
                                    for _ in range(n_layers))

    def forward(self, x, enc_outs):
        if len(enc_outs) != len(self.layers):
            raise ValueError(f"{len(self.layers)} decoder layers need as many encoder outputs, "
                             f"got {len(enc_outs)}")
        total = 0
        for layer, cross in zip(self.layers, enc_outs):
            x, pred = layer(x, cross)
            total = total + pred
        B, D, S, P = total.shape
        return total.reshape(B, D, S * P).transpose(1, 2)
