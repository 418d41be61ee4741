"""Input embeddings of the Informer family: value (token) + position + time stamp.

Shapes are channels-last: x [B, L, C] -> [B, L, d_model].
"""
from __future__ import annotations

import math

import torch
from torch import nn


def sinusoid_table(n: int, d_model: int, device=None) -> torch.Tensor:
    """The fixed sin/cos positional table of Vaswani et al. [n, d_model] (computed on
    ``device``)."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device)
                    * -(math.log(10000.0) / d_model))
    table = torch.zeros(n, d_model, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return table


class TokenEmbedding(nn.Module):
    """Value embedding: a width-3 circular 1-D convolution over time (Informer)."""

    def __init__(self, c_in: int, d_model: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, d_model, kernel_size=3, padding=1, padding_mode="circular",
                              bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class PositionalEmbedding(nn.Module):
    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(max_len, d_model)[None], persistent=False)

    def forward(self, x):
        return self.pe[:, : x.size(1)]


class FixedEmbedding(nn.Module):
    """An embedding table frozen to sinusoids (Informer's ``fixed`` calendar embedding)."""

    def __init__(self, n: int, d_model: int):
        super().__init__()
        self.emb = nn.Embedding(n, d_model)
        self.emb.weight = nn.Parameter(sinusoid_table(n, d_model), requires_grad=False)

    def forward(self, idx):
        return self.emb(idx).detach()


# calendar fields in the order utils.timefeatures writes them (timeenc=0) and table sizes
CALENDAR_SIZES = (("month", 13), ("day", 32), ("weekday", 7), ("hour", 24), ("minute", 4))


class TemporalEmbedding(nn.Module):
    """Sum of per-field embeddings of integer calendar fields (x_mark from timeenc=0)."""

    def __init__(self, d_model: int, n_fields: int, embed_type: str = "fixed"):
        super().__init__()
        if not 0 < n_fields <= len(CALENDAR_SIZES):
            raise ValueError(f"calendar embedding needs 1..{len(CALENDAR_SIZES)} fields, got "
                             f"{n_fields}; use data.timeenc=0 with embed=fixed|learned")
        Emb = FixedEmbedding if embed_type == "fixed" else nn.Embedding
        self.tables = nn.ModuleList(Emb(size, d_model) for _, size in CALENDAR_SIZES[:n_fields])

    def forward(self, x_mark):
        x_mark = x_mark.long()
        return sum(t(x_mark[..., i]) for i, t in enumerate(self.tables))


class TimeFeatureEmbedding(nn.Module):
    """Linear map of the normalised time features (x_mark from timeenc=1, Informer's timeF)."""

    def __init__(self, mark_dim: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(mark_dim, d_model)

    def forward(self, x_mark):
        return self.proj(x_mark)


class DataEmbedding(nn.Module):
    """value + position (+ time stamp when marks are given), then dropout."""

    def __init__(self, c_in: int, d_model: int, embed: str = "timeF", mark_dim: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.value = TokenEmbedding(c_in, d_model)
        self.position = PositionalEmbedding(d_model)
        if embed == "timeF":
            self.temporal = TimeFeatureEmbedding(mark_dim, d_model) if mark_dim > 0 else None
        elif embed in ("fixed", "learned"):
            self.temporal = TemporalEmbedding(d_model, mark_dim, embed)
        else:
            raise ValueError(f"model.embed must be timeF, fixed or learned, got '{embed}'")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, x_mark=None):
        out = self.value(x) + self.position(x)
        if x_mark is not None and self.temporal is not None:
            out = out + self.temporal(x_mark)
        return self.dropout(out)
