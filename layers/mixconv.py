"""MixConv (Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019) in 1-D,
and a MixNet-style encoder built from it.

``MixConv1d``: one depthwise layer whose channels are split into groups, each group convolved
with its own kernel size, outputs concatenated. The split is the paper's equal split (the first
group takes the remainder when the channels do not divide evenly) and the kernel sizes grow
by a fixed step from 3, the smallest kernel on the first group.

``MixBlock``: MixNet's inverted bottleneck: pointwise expansion (BN, swish), MixConv (BN,
swish), squeeze-and-excitation (reduced to ``se_ratio`` x the block's input width, as MixNet),
pointwise projection (BN, no activation), identity shortcut when the width is unchanged.

``MixConvEncoder``: x [B, T, C] -> [B, T, repr_dim]: a 3-tap stem conv (BN, swish), a stack
of MixBlocks, a pointwise projection to ``repr_dim``.

Choices for 1-D ECG (the 2-D paper has no counterpart for these):
- Every layer keeps the time resolution (stride 1), so each input step has its own output
  (MixNet downsamples by 2 five times). The kernels are scaled to make up for it: the paper's
  sequence 3, 5, 7, 9 grows by 2 on feature maps of stride 2 to 32; here the default grows by 4
  (3, 7, 11, 15: 17 to 83 ms at 180 Hz, the largest spanning a QRS complex).
- One kernel list for all blocks and swish everywhere (MixNet-S uses ReLU in its first
  blocks and fewer groups early); no grouped pointwise convolutions and no drop-connect.
- Unobserved steps (``mask`` False, NaN inputs zeroed) are zeroed again before every MixConv,
  and squeeze-and-excitation averages over observed steps only, so in eval mode the observed
  steps of a padded series get exactly what the series alone gets (BatchNorm in training mode
  still sees the padded steps in its batch statistics).
"""
from __future__ import annotations

import torch
from torch import nn

from layers.step_mask import observed_mean, zero_unobserved


def equal_split(channels: int, groups: int) -> list[int]:
    """MixConv's equal channel split; the first group takes the remainder."""
    sizes = [channels // groups] * groups
    sizes[0] += channels - sum(sizes)
    return sizes


def _check_kernel_sizes(kernel_sizes, where: str) -> tuple[int, ...]:
    ks = tuple(int(k) for k in kernel_sizes)
    if not ks or any(k < 1 or k % 2 == 0 for k in ks):
        raise ValueError(f"{where}: kernel_sizes must be a non-empty list of odd positive "
                         f"integers (same-length output), got {list(ks)}")
    return ks


class MixConv1d(nn.Module):
    """Depthwise convolution of x [B, C, T] with a different kernel size per channel group."""

    def __init__(self, channels: int, kernel_sizes=(3, 5, 7, 9)):
        super().__init__()
        ks = _check_kernel_sizes(kernel_sizes, "MixConv1d")
        if channels < len(ks):
            raise ValueError(f"MixConv1d: {channels} channels cannot be split into "
                             f"{len(ks)} kernel groups; use fewer kernel_sizes or more channels")
        self.kernel_sizes = ks
        self.splits = equal_split(int(channels), len(ks))
        self.convs = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2, groups=c, bias=False)
                                   for c, k in zip(self.splits, ks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(g) for conv, g in zip(self.convs, groups)], dim=1)


class SqueezeExcite(nn.Module):
    """Channel gate from the observed steps' mean: sigmoid(W2 swish(W1 mean(h)))."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv1d(channels, reduced, 1)
        self.expand = nn.Conv1d(reduced, channels, 1)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        s = self.expand(self.act(self.reduce(observed_mean(h, keep))))
        return h * torch.sigmoid(s)


class MixBlock(nn.Module):
    """MixNet's inverted bottleneck on [B, C, T] (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes=(3, 7, 11, 15),
                 expand_ratio: float = 3.0, se_ratio: float = 0.5):
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.expand = (nn.Sequential(nn.Conv1d(in_channels, hidden, 1, bias=False),
                                     nn.BatchNorm1d(hidden), nn.SiLU())
                       if hidden != in_channels else nn.Identity())
        self.mix = MixConv1d(hidden, kernel_sizes)
        self.mix_out = nn.Sequential(nn.BatchNorm1d(hidden), nn.SiLU())
        self.se = (SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)))
                   if se_ratio > 0 else None)
        self.project = nn.Sequential(nn.Conv1d(hidden, out_channels, 1, bias=False),
                                     nn.BatchNorm1d(out_channels))
        self.residual = in_channels == out_channels

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        h = self.expand(x)
        h = self.mix_out(self.mix(zero_unobserved(h, keep)))
        if self.se is not None:
            h = self.se(h, keep)
        h = self.project(h)
        return x + h if self.residual else h


class MixConvEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim] (module docstring); ``mask`` bool [B, T], True = observed."""

    def __init__(self, in_channels: int, repr_dim: int = 128, stem_width: int = 24,
                 widths=(24, 32, 32, 48, 48, 64), kernel_sizes=(3, 7, 11, 15),
                 expand_ratio: float = 3.0, se_ratio: float = 0.5):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1 or int(stem_width) < 1:
            raise ValueError(f"mixconv: widths must be a non-empty list of positive integers and "
                             f"stem_width positive, got widths={widths}, stem_width={stem_width}")
        if float(expand_ratio) < 1:
            raise ValueError(f"mixconv: expand_ratio must be >= 1 (MixNet uses 3 or 6), got {expand_ratio}")
        if not 0 <= float(se_ratio) <= 1:
            raise ValueError(f"mixconv: se_ratio must be in [0, 1] (0 = no squeeze-and-excitation), "
                             f"got {se_ratio}")
        ks = _check_kernel_sizes(kernel_sizes, "mixconv")
        self.stem = nn.Sequential(nn.Conv1d(in_channels, int(stem_width), 3, padding=1, bias=False),
                                  nn.BatchNorm1d(int(stem_width)), nn.SiLU())
        blocks, ch = [], int(stem_width)
        for w in widths:
            blocks.append(MixBlock(ch, w, ks, float(expand_ratio), float(se_ratio)))
            ch = w
        self.blocks = nn.ModuleList(blocks)
        self.proj = nn.Conv1d(ch, repr_dim, 1)
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        keep = None if mask is None else mask.to(torch.bool).unsqueeze(1).to(x.dtype)
        h = zero_unobserved(torch.nan_to_num(x, nan=0.0).transpose(1, 2), keep)
        h = self.stem(h)
        for block in self.blocks:
            h = block(h, keep)
        return self.proj(h).transpose(1, 2)
