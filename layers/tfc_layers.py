"""Pieces of TF-C (Zhang et al., NeurIPS 2022): its augmentation banks and encoders.

Time-domain bank (one augmentation drawn per sample, as the official DataTransform_TD_bank
means to): jitter (additive Gaussian noise), scaling (per-channel Gaussian factor around 1),
permutation of up to ``max_seg`` random segments, and masking of 10 % of the time steps.
Frequency-domain bank (on the magnitude spectrum |FFT(x)|): remove components (each set to
zero with probability ``ratio``) and add components (each, with probability ``ratio``,
raised by a uniform amount up to 0.1 x the spectrum's peak). Both perturbations are
applied to the frequency view, so it stays close to the original in time and frequency.
The augmentations themselves are the shared ones of utils/augmentations.py.

Encoders (x [B, C, L] channel-first, as the official code):
- ``transformer``: the official one, a 2-layer Transformer whose tokens are the channels and
  whose width is the series length L (2 heads, feed-forward 2L); flattened output [B, C*L];
- ``cnn``: three conv blocks (kernel 8, BatchNorm, ReLU, max-pool 2), the 1-D CNN of the
  TS-TCC/TF-C code base; flattened output.
"""
from __future__ import annotations

import torch
from torch import nn

from utils.augmentations import (Jitter, Masking, Permutation, Scaling, add_frequency,
                                 remove_frequency)


# ---------------------------------------------------------------------------- augmentation banks
def time_bank(x: torch.Tensor, jitter_ratio: float, scale_ratio: float, max_seg: int,
              mode: str = "bank") -> torch.Tensor:
    """x [B, T, C] -> one time-domain augmentation per sample ("bank") or jitter only
    ("jitter", the official code's final choice). Built from utils.augmentations."""
    if mode == "jitter":
        return Jitter(jitter_ratio)(x)
    if mode != "bank":
        raise ValueError(f"unknown TF-C time augmentation mode '{mode}'; use bank or jitter")
    bank = (Jitter(jitter_ratio), Scaling(scale_ratio), Permutation(max(max_seg, 2)),
            Masking(ratio=0.1, mode="binomial"))
    candidates = torch.stack([aug(x) for aug in bank])                  # 4 x B x T x C
    pick = torch.randint(0, len(bank), (x.size(0),), device=x.device)
    return candidates[pick, torch.arange(x.size(0), device=x.device)]


def magnitude_spectrum(x: torch.Tensor) -> torch.Tensor:
    """|FFT(x)| over time (dim 1 of [B, T, C]), same length as x: the official frequency view."""
    return torch.fft.fft(x, dim=1).abs()


def frequency_bank(xf: torch.Tensor, ratio: float = 0.1) -> torch.Tensor:
    """Remove then add components of a magnitude spectrum [B, T, C]; added amplitudes are
    uniform up to 0.1 x the spectrum's peak, as the official add_frequency."""
    return add_frequency(remove_frequency(xf, ratio), ratio, alpha=0.1)


# ---------------------------------------------------------------------------- encoders
class ChannelTokenTransformer(nn.Module):
    def __init__(self, seq_len: int, nhead: int = 2, num_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        while seq_len % nhead:       # width L must split over the heads
            nhead -= 1
        layer = nn.TransformerEncoderLayer(seq_len, nhead, 2 * seq_len, dropout, batch_first=True)
        self.net = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # [B, C, L] -> [B, C*L]
        return self.net(x).flatten(1)


class ConvEncoder(nn.Module):
    def __init__(self, in_channels: int, channels=(32, 64, 128), kernel_size: int = 8,
                 dropout: float = 0.35):
        super().__init__()
        blocks, ch = [], in_channels
        for i, out in enumerate(channels):
            block = [nn.Conv1d(ch, out, kernel_size, padding=kernel_size // 2, bias=False),
                     nn.BatchNorm1d(out), nn.ReLU(), nn.MaxPool1d(2, 2, padding=1)]
            if i == 0:
                block.append(nn.Dropout(dropout))
            blocks += block
            ch = out
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


def make_encoder(kind: str, in_channels: int, seq_len: int, **kw) -> tuple[nn.Module, int]:
    """(encoder, flattened output size) for x [B, in_channels, seq_len]."""
    if kind == "transformer":
        enc = ChannelTokenTransformer(seq_len, kw.get("nhead", 2), kw.get("num_layers", 2))
    elif kind == "cnn":
        enc = ConvEncoder(in_channels, tuple(kw.get("cnn_channels", (32, 64, 128))),
                          kw.get("kernel_size", 8), kw.get("dropout", 0.35))
    else:
        raise ValueError(f"unknown TF-C encoder '{kind}'; use transformer or cnn")
    with torch.no_grad():
        was = enc.training
        enc.eval()
        size = enc(torch.zeros(2, in_channels, seq_len)).size(1)
        enc.train(was)
    return enc, size
