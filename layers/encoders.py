"""The shared encoder choice of the self-supervised methods: x [B, T, C] -> per-time
representations [B, T, D], plus pooling to one vector per series. conf/model/{simclr,moco,
byol,simsiam,dino,instdisc,hybrid}.yaml default to resnet1d.

    build_encoder("ts2vec" | "resnet1d" | "transformer", in_channels, repr_dim, **kw)

- ts2vec: TS2Vec's dilated-convolution encoder (layers/dilated_conv.py); timestamp masking
  off by default (the methods augment their views themselves).
- resnet1d: the residual blocks of Wang et al. 2017 (layers/conv_blocks.py), a 1x1 projection
  to ``repr_dim`` when the last width differs.
- transformer: a pre-norm Transformer encoder over time-step (or patch) tokens with
  sinusoidal positions, so crops of any length encode (DINO's local views).

Every encoder zeroes NaN (unobserved) entries, takes an optional bool ``mask`` [B, T]
(True = keep) and has ``repr_dim``.
"""
from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn

from layers.conv_blocks import ResidualBlock
from layers.embed import sinusoid_table

POOLINGS = ("max", "mean", "last", None)


def pool(h: torch.Tensor, pooling: str | None = "max", mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, D] -> [B, D] by max / mean over time or the last step; None keeps [B, T, D].
    ``mask`` (bool [B, T], True = observed) leaves unobserved steps out of max and mean."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling '{pooling}'; choose one of max, mean, last or None")
    if pooling is None:
        return h
    if pooling == "last":
        return h[:, -1]
    if mask is None:
        return h.amax(dim=1) if pooling == "max" else h.mean(dim=1)
    m = mask.unsqueeze(-1).to(torch.bool)
    if pooling == "max":
        return h.masked_fill(~m, float("-inf")).amax(dim=1).nan_to_num(neginf=0.0)
    w = m.to(h.dtype)
    return (h * w).sum(1) / w.sum(1).clamp(min=1)


def _clean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero NaN entries and masked-out time steps."""
    x = torch.nan_to_num(x, nan=0.0)
    if mask is not None and not isinstance(mask, str):
        x = x * mask.to(torch.bool).unsqueeze(-1).to(x.dtype)
    return x


class TS2VecEncoder(nn.Module):
    def __init__(self, in_channels: int, repr_dim: int = 320, hidden_dims: int = 64, depth: int = 10,
                 kernel_size: int = 3, mask_mode: str = "all_true", repr_dropout: float = 0.1):
        super().__init__()
        from layers.dilated_conv import TSEncoder
        self.net = TSEncoder(in_channels, repr_dim, hidden_dims, depth, kernel_size, mask_mode,
                             repr_dropout)
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, mask)


class ResNet1DEncoder(nn.Module):
    def __init__(self, in_channels: int, repr_dim: int = 128, widths=(64, 128, 128),
                 kernel_sizes=(8, 5, 3)):
        super().__init__()
        blocks, ch = [], in_channels
        for w in widths:
            blocks.append(ResidualBlock(ch, int(w), tuple(kernel_sizes)))
            ch = int(w)
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Conv1d(ch, repr_dim, 1) if ch != repr_dim else nn.Identity()
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(_clean(x, mask).transpose(1, 2))
        return self.proj(h).transpose(1, 2)


class TransformerEncoder(nn.Module):
    """Tokens = time steps (patch_len 1) or non-overlapping patches; a patch's output is
    repeated over its steps so the output stays [B, T, D]."""

    def __init__(self, in_channels: int, repr_dim: int = 128, d_model: int | None = None,
                 n_heads: int = 4, n_layers: int = 3, d_ff: int | None = None,
                 dropout: float = 0.1, patch_len: int = 1):
        super().__init__()
        d_model = int(d_model or repr_dim)
        if d_model % n_heads:
            raise ValueError(f"transformer encoder: d_model={d_model} must be divisible by n_heads={n_heads}")
        self.patch_len, self.d_model = int(patch_len), d_model
        self.embed = nn.Linear(in_channels * self.patch_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff or 4 * d_model, dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, repr_dim) if d_model != repr_dim else nn.Identity()
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        x = _clean(x, mask)
        p = self.patch_len
        pad = (-t) % p
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        tokens = x.reshape(b, (t + pad) // p, p * c)
        h = self.embed(tokens) + sinusoid_table(tokens.size(1), self.d_model, x.device)
        h = self.out(self.norm(self.layers(h)))
        if p > 1:
            h = h.repeat_interleave(p, dim=1)[:, :t]
        return h


# name -> encoder class, or "module:Class" of a backbone imported when first built (the
# backbones of the research notes live in their own layers/ modules)
ENCODERS = {
    "ts2vec": TS2VecEncoder, "resnet1d": ResNet1DEncoder, "transformer": TransformerEncoder,
    "mixconv": "layers.mixconv:MixConvEncoder",
    "pkinet": "layers.pkinet:PKINetEncoder",
    "danet": "layers.danet:DANetEncoder",
    "dat": "layers.dual_aggregation:DATEncoder",
    "dualvit": "layers.dual_vit:DualViTEncoder",
    "atd": "layers.token_dictionary:ATDEncoder",
    "deformable": "layers.deformable_attention:DeformableEncoder",
    "multiway": "layers.multiway:MultiwayEncoder",
    "two_stream": "layers.two_stream:TwoStreamEncoder",
}


def encoder_class(name: str) -> type:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder '{name}'; choose one of {', '.join(ENCODERS)}")
    entry = ENCODERS[name]
    if isinstance(entry, str):
        module, cls = entry.split(":")
        entry = getattr(importlib.import_module(module), cls)
    return entry


def build_encoder(name: str, in_channels: int, repr_dim: int, **kw) -> nn.Module:
    """The encoder ``name`` mapping x [B, T, in_channels] to [B, T, repr_dim]."""
    cls = encoder_class(name)
    try:
        return cls(in_channels, repr_dim, **kw)
    except TypeError as err:
        raise ValueError(f"encoder '{name}': {err} (check model.encoder_kwargs)") from err
