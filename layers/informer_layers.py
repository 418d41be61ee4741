"""Informer's encoder with self-attention distilling and its generative decoder
(Zhou et al., AAAI 2021, Sec. 3.2-3.3). Shapes [B, L, d_model]."""
from __future__ import annotations

from torch import nn
import torch.nn.functional as F


class DistillingLayer(nn.Module):
    """Conv1d(k=3) -> BatchNorm -> ELU -> MaxPool(k=3, stride 2): halves the length so the
    next attention layer sees the dominant features only (L -> ceil(L/2))."""

    def __init__(self, d_model: int):
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1, padding_mode="circular")
        self.norm = nn.BatchNorm1d(d_model)
        self.act = nn.ELU()
        self.pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)

    def forward(self, x):
        x = self.pool(self.act(self.norm(self.conv(x.transpose(1, 2)))))
        return x.transpose(1, 2)


def _activation(name: str):
    if name not in ("relu", "gelu"):
        raise ValueError(f"activation must be relu or gelu, got '{name}'")
    return F.relu if name == "relu" else F.gelu


class EncoderLayer(nn.Module):
    """Self-attention + position-wise feed-forward (1x1 convolutions), post-norm."""

    def __init__(self, attention: nn.Module, d_model: int, d_ff: int | None = None,
                 dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.attention = attention
        self.conv1 = nn.Conv1d(d_model, d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(d_ff, d_model, kernel_size=1)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.act = _activation(activation)

    def forward(self, x, attn_mask=None):
        new_x, attn = self.attention(x, x, x, attn_mask)
        x = self.norm1(x + self.dropout(new_x))
        y = self.dropout(self.act(self.conv1(x.transpose(1, 2))))
        y = self.dropout(self.conv2(y).transpose(1, 2))
        return self.norm2(x + y), attn


class Encoder(nn.Module):
    """Attention layers, with a distilling layer between consecutive ones."""

    def __init__(self, attn_layers, conv_layers=None, norm_layer: nn.Module | None = None):
        super().__init__()
        self.attn_layers = nn.ModuleList(attn_layers)
        self.conv_layers = nn.ModuleList(conv_layers) if conv_layers is not None else None
        if self.conv_layers is not None and len(self.conv_layers) != len(self.attn_layers) - 1:
            raise ValueError("distilling needs one conv layer between each two attention layers")
        self.norm = norm_layer

    def forward(self, x, attn_mask=None):
        attns = []
        if self.conv_layers is not None:
            for attn_layer, conv_layer in zip(self.attn_layers, self.conv_layers):
                x, attn = attn_layer(x, attn_mask=attn_mask)
                x = conv_layer(x)
                attns.append(attn)
            x, attn = self.attn_layers[-1](x, attn_mask=attn_mask)
            attns.append(attn)
        else:
            for attn_layer in self.attn_layers:
                x, attn = attn_layer(x, attn_mask=attn_mask)
                attns.append(attn)
        if self.norm is not None:
            x = self.norm(x)
        return x, attns


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder output, feed-forward."""

    def __init__(self, self_attention: nn.Module, cross_attention: nn.Module, d_model: int,
                 d_ff: int | None = None, dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.self_attention, self.cross_attention = self_attention, cross_attention
        self.conv1 = nn.Conv1d(d_model, d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(d_ff, d_model, kernel_size=1)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)
        self.act = _activation(activation)

    def forward(self, x, cross, x_mask=None, cross_mask=None):
        x = self.norm1(x + self.dropout(self.self_attention(x, x, x, x_mask)[0]))
        x = self.norm2(x + self.dropout(self.cross_attention(x, cross, cross, cross_mask)[0]))
        y = self.dropout(self.act(self.conv1(x.transpose(1, 2))))
        y = self.dropout(self.conv2(y).transpose(1, 2))
        return self.norm3(x + y)


class Decoder(nn.Module):
    def __init__(self, layers, norm_layer: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm_layer

    def forward(self, x, cross, x_mask=None, cross_mask=None):
        for layer in self.layers:
            x = layer(x, cross, x_mask=x_mask, cross_mask=cross_mask)
        return self.norm(x) if self.norm is not None else x
