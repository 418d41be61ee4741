"""DANet's dual attention (Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019)
on 1-D series: a position attention module over time steps and a channel attention module over
feature maps, in parallel on the features of a dilated convolutional stem, their outputs summed.

    x [B, T, C] -> stem (conv k7, residual dilated conv blocks) -> [B, width, T]
      -> conv-BN-ReLU -> PositionAttention -> conv-BN-ReLU ─┐
      -> conv-BN-ReLU -> ChannelAttention  -> conv-BN-ReLU ─┴ sum -> dropout, 1x1 conv -> [B, T, D]

As the paper's head (and the authors' DANetHead): each module sits between two 3-wide
conv-BN-ReLU layers on ``width // head_reduction`` channels (their 2048 -> 512), the query and
key of the position module have ``channels // qk_reduction`` channels (their C/8), both
residual scales (alpha, beta) start at 0, and the summed features go through channel dropout
(their Dropout2d(0.1)) and a 1x1 convolution.

Choices for 1-D (the paper's 2-D choices without a 1-D meaning):
- the dilated ResNet backbone (output stride 8) becomes a stem that keeps every time step: a
  7-wide convolution (ResNet's first layer) and one residual block of two 3-wide convolutions
  per entry of ``dilations`` (the dilated ResNet's growing dilation), so the encoder returns
  one vector per input step and attends over all of them;
- channel attention: the paper's Eq. (3) is softmax(A A^T); the authors' code feeds the softmax
  max(E) - E instead, which equals softmax(-E) (the softmax is shift-invariant) and so favours
  dissimilar channels. ``channel_energy="official"`` (default) follows the code the paper's
  results come from, ``"paper"`` the equation.

Masks (bool [B, T], True = observed): a masked step is zeroed before every convolution and is
never a key of the position attention nor part of the channel Gram matrix, but still receives
a representation from its observed context (TS2Vec's timestamp masking relies on that). In
evaluation mode, a padded series' observed steps therefore get exactly the outputs of the
unpadded series.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNEL_ENERGIES = ("official", "paper")


def zero_masked(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """h [B, C, T] with the masked-out steps set to 0, so a convolution reads them as padding."""
    return h if mask is None else h * mask.unsqueeze(1).to(h.dtype)


class ConvBNReLU(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, dilation: int = 1,
                 act: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=dilation * (kernel_size // 2),
                              dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(out_ch)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(self.bn(self.conv(zero_masked(h, mask))))


class DilatedResidualBlock(nn.Module):
    """Two 3-wide conv-BN layers of one dilation and an identity shortcut (a basic ResNet block)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = ConvBNReLU(channels, channels, 3, dilation)
        self.conv2 = ConvBNReLU(channels, channels, 3, dilation, act=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.relu(h + self.conv2(self.conv1(h, mask), mask))


class PositionAttention(nn.Module):
    """Position attention module: S = softmax over keys of B^T C (B, C the query and key 1x1
    convolutions), output alpha * (D S^T) + input with D the value convolution and alpha a
    learned scale initialised to 0. h [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, qk_reduction: int = 8):
        super().__init__()
        if qk_reduction < 1:
            raise ValueError(f"qk_reduction={qk_reduction} must be >= 1 (the paper's 8)")
        qk = max(1, channels // qk_reduction)
        self.query = nn.Conv1d(channels, qk, 1)
        self.key = nn.Conv1d(channels, qk, 1)
        self.value = nn.Conv1d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def attention(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """S [B, T_query, T_key]; masked keys get weight 0 (a row with no key left is all 0)."""
        energy = torch.bmm(self.query(h).transpose(1, 2), self.key(h))
        if mask is not None:
            energy = energy.masked_fill(~mask.to(torch.bool).unsqueeze(1), float("-inf"))
        return energy.softmax(dim=-1).nan_to_num(0.0)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.bmm(self.value(h), self.attention(h, mask).transpose(1, 2))
        return self.alpha * out + h


class ChannelAttention(nn.Module):
    """Channel attention module: X = softmax over channels of the Gram matrix A A^T (summed over
    the observed steps), output beta * (X A) + input with beta a learned scale initialised to 0.
    No projections, as the paper. h [B, C, T] -> [B, C, T]."""

    def __init__(self, channel_energy: str = "official"):
        super().__init__()
        if channel_energy not in CHANNEL_ENERGIES:
            raise ValueError(f"channel_energy='{channel_energy}'; choose 'official' (the authors' "
                             "softmax(max(E) - E)) or 'paper' (Eq. 3, softmax(E))")
        self.channel_energy = channel_energy
        self.beta = nn.Parameter(torch.zeros(1))

    def attention(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """X [B, C, C]."""
        a = zero_masked(h, mask)
        energy = torch.bmm(a, a.transpose(1, 2))
        if self.channel_energy == "official":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        return energy.softmax(dim=-1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.bmm(self.attention(h, mask), zero_masked(h, mask))
        return self.beta * out + h


class DANetEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]; see the module docstring."""

    def __init__(self, in_channels: int, repr_dim: int = 128, width: int = 128,
                 dilations=(1, 2, 4), head_reduction: int = 4, qk_reduction: int = 8,
                 channel_energy: str = "official", dropout: float = 0.1):
        super().__init__()
        if width < 1 or head_reduction < 1 or width // head_reduction < 1:
            raise ValueError(f"danet: width={width} // head_reduction={head_reduction} must be "
                             ">= 1 (the head's channels; the paper uses width / 4)")
        if any(int(d) < 1 for d in dilations):
            raise ValueError(f"danet: dilations={list(dilations)} must all be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"danet: dropout={dropout} must be in [0, 1)")
        inter = width // head_reduction
        self.stem = ConvBNReLU(in_channels, width, 7)
        self.blocks = nn.ModuleList(DilatedResidualBlock(width, int(d)) for d in dilations)
        self.position_in = ConvBNReLU(width, inter)
        self.position = PositionAttention(inter, qk_reduction)
        self.position_out = ConvBNReLU(inter, inter)
        self.channel_in = ConvBNReLU(width, inter)
        self.channel = ChannelAttention(channel_energy)
        self.channel_out = ConvBNReLU(inter, inter)
        self.dropout = nn.Dropout1d(dropout)   # whole feature maps, as the paper's Dropout2d
        self.out = nn.Conv1d(inter, repr_dim, 1)
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            mask = mask.to(torch.bool)
        h = self.stem(torch.nan_to_num(x, nan=0.0).transpose(1, 2), mask)
        for block in self.blocks:
            h = block(h, mask)
        pos = self.position_out(self.position(self.position_in(h, mask), mask), mask)
        chan = self.channel_out(self.channel(self.channel_in(h, mask), mask), mask)
        return self.out(self.dropout(pos + chan)).transpose(1, 2)
