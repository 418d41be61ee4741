"""The Dual Aggregation Transformer (Chen et al., "Dual Aggregation Transformer for Image
Super-Resolution", ICCV 2023) on 1-D series: blocks that alternate time-window self-attention
(the paper's spatial-window self-attention) and channel self-attention, each with the adaptive
interaction module (AIM) and the spatial-gate feed-forward network (SGFN).

    x [B, T, C] -> conv k3 -> residual groups -> LayerNorm -> conv k3 (+ the first conv's output)
      -> linear -> [B, T, D]
    residual group: blocks (even: window attention, odd: channel attention), conv k3, + input
    block: x + AIM(LN(x)), then x + SGFN(LN(x))

AIM (``AdaptiveInteraction``): the attention branch and a parallel depthwise-conv branch (3-wide
depthwise conv, BN, GELU on the values V) exchange information through two gates, each taken
from the branch that has what the other lacks:
- window attention (local in time, no channel mixing): the conv branch's channel map (pooled,
  linear C -> C/8, norm, GELU, linear) gates the attention output channel-wise, and the
  attention's spatial map (1x1 conv C -> C/16, BN, GELU, 1x1 conv -> 1) gates the conv branch
  step-wise;
- channel attention (global in time, no local structure): the conv branch's spatial map gates
  the attention output step-wise and the attention's channel map gates the conv branch.
The two are summed and projected. SGFN: linear (dim -> expansion * dim), GELU, split in two
halves, gate the first by a depthwise 3-wide conv of the LayerNorm-ed second, linear back.

Channel self-attention (``ChannelSelfAttention``) is the transposed attention of the paper: per
head, queries and keys are the channels (vectors over time), L2-normalised over time, their
cosine similarities times a learned per-head temperature (initialised to 1) go through a softmax
over channels, and the values' channels are mixed by it.

Choices for 1-D (the paper's 2-D choices without a 1-D meaning):
- the rectangle windows of the paper (8x32 on half the heads, 32x8 on the other half, with
  shifts in some blocks) have no second orientation in 1-D; their purpose, that neighbouring
  windows exchange information in every block, is kept by running half the heads on windows of
  ``window`` steps and the other half on the same windows shifted by half a window;
- the paper's dynamic position bias (an MLP from relative coordinates, so any window size
  works) becomes a learned bias per head and relative offset (2 * window - 1 entries,
  initialised to 0), since the window size is fixed here;
- the channel map of AIM normalises a pooled vector; the paper's BatchNorm there fails on a
  training batch of one series, so it is a LayerNorm over its C/8 channels (at least 4);
- a series whose length is not a multiple of the window is padded to one and the padded steps
  are masked out of every window; there is no drop-path (the paper's 0.1 is for 64-block SR
  models).

Masks (bool [B, T], True = observed): masked steps are zeroed before every convolution, are
never keys of the window attention, are left out of the channel attention's statistics and of
the channel maps' pooling, but still receive a representation from their observed context. In
evaluation mode a padded series' observed steps get exactly the outputs of the unpadded series.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ATTENTIONS = ("window", "channel")


def zero_masked(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """h [B, C, T] with the masked-out steps set to 0, so a convolution reads them as padding."""
    return h if mask is None else h * mask.unsqueeze(1).to(h.dtype)


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """h [B, C, T] -> [B, C, 1], the mean over the observed steps."""
    if mask is None:
        return h.mean(dim=-1, keepdim=True)
    w = mask.unsqueeze(1).to(h.dtype)
    return (h * w).sum(-1, keepdim=True) / w.sum(-1, keepdim=True).clamp(min=1)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, D] -> [B, heads, T, D / heads]."""
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(1, 2)


class WindowAttention1d(nn.Module):
    """Softmax attention of each step to the steps of its own window of ``window`` steps; with
    ``shifted`` (and at least 2 heads) the second half of the heads uses windows shifted by
    window // 2. q, k, v [B, T, dim] -> [B, T, dim]."""

    def __init__(self, dim: int, num_heads: int, window: int, shifted: bool = True):
        super().__init__()
        if window < 1:
            raise ValueError(f"window={window} must be >= 1 (time steps per attention window)")
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.window = num_heads, window
        self.scale = (dim // num_heads) ** -0.5
        self.plain_heads = num_heads - num_heads // 2 if shifted else num_heads
        self.position_bias = nn.Parameter(torch.zeros(num_heads, 2 * window - 1))
        idx = torch.arange(window)
        self.register_buffer("bias_index", idx[:, None] - idx[None, :] + window - 1,
                             persistent=False)

    def head_offsets(self) -> list[int]:
        """The window offset of each head (0, or window // 2 for the shifted heads)."""
        return [0] * self.plain_heads + [self.window // 2] * (self.num_heads - self.plain_heads)

    def forward(self, q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = q.shape
        q, k, v = (split_heads(z, self.num_heads) for z in (q, k, v))
        keep = torch.ones(b, t, dtype=torch.bool, device=q.device) if mask is None else mask.to(torch.bool)
        h0 = self.plain_heads
        parts = [self._windowed(q[:, :h0], k[:, :h0], v[:, :h0], keep, 0, self.position_bias[:h0])]
        if h0 < self.num_heads:
            parts.append(self._windowed(q[:, h0:], k[:, h0:], v[:, h0:], keep, self.window // 2,
                                        self.position_bias[h0:]))
        return torch.cat(parts, dim=1).transpose(1, 2).reshape(b, t, d)

    def _windowed(self, q, k, v, keep, offset: int, bias) -> torch.Tensor:
        """Heads [B, H, T, E] attending within windows that start at -offset."""
        b, heads, t, e = q.shape
        w = self.window
        right = (-(t + offset)) % w
        q, k, v = (F.pad(z, (0, 0, offset, right)) for z in (q, k, v))
        keep = F.pad(keep, (offset, right), value=False)
        n = keep.size(1) // w
        q, k, v = (z.reshape(b, heads, n, w, e) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * self.scale + bias[:, self.bias_index].unsqueeze(1)
        scores = scores.masked_fill(~keep.reshape(b, 1, n, 1, w), float("-inf"))
        out = scores.softmax(dim=-1).nan_to_num(0.0) @ v      # a window with no key left: 0
        return out.reshape(b, heads, n * w, e)[:, :, offset:offset + t]


class ChannelSelfAttention(nn.Module):
    """Transposed (channel-wise) self-attention per head: softmax over channels of
    temperature * cos(q_i, k_j), the cosine over the observed steps. q, k, v [B, T, dim] ->
    [B, T, dim]."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))

    def forward(self, q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = q.shape
        if mask is not None:
            keep = mask.to(q.dtype).unsqueeze(-1)
            q, k = q * keep, k * keep
        q, k, v = (split_heads(z, self.num_heads).transpose(-2, -1) for z in (q, k, v))  # [B, H, E, T]
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return (attn @ v).permute(0, 3, 1, 2).reshape(b, t, d)


class AdaptiveInteraction(nn.Module):
    """One attention (``"window"`` or ``"channel"``) beside a depthwise-conv branch on its values,
    the two gating each other as the paper's AIM; x [B, T, dim] -> [B, T, dim]."""

    def __init__(self, dim: int, num_heads: int, attention: str = "window", window: int = 16,
                 qkv_bias: bool = True):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention='{attention}'; choose 'window' or 'channel'")
        self.kind = attention
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attention = (WindowAttention1d(dim, num_heads, window) if attention == "window"
                          else ChannelSelfAttention(dim, num_heads))
        # no bias before a BatchNorm (it would be cancelled; the paper's layers carry one)
        self.dwconv = nn.Sequential(nn.Conv1d(dim, dim, 3, padding=1, groups=dim, bias=False),
                                    nn.BatchNorm1d(dim), nn.GELU())
        reduced = max(4, dim // 8)    # at least 4, so a narrow model's layer norm is not all 0
        self.channel_map = nn.Sequential(nn.Linear(dim, reduced), nn.LayerNorm(reduced), nn.GELU(),
                                         nn.Linear(reduced, dim))
        self.spatial_map = nn.Sequential(nn.Conv1d(dim, max(1, dim // 16), 1, bias=False),
                                         nn.BatchNorm1d(max(1, dim // 16)), nn.GELU(),
                                         nn.Conv1d(max(1, dim // 16), 1, 1))
        self.proj = nn.Linear(dim, dim)

    def channel_gate(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The channel map (before the sigmoid) of h [B, dim, T]: [B, dim, 1]."""
        return self.channel_map(masked_mean(h, mask).transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attended = self.attention(q, k, v, mask).transpose(1, 2)      # [B, dim, T]
        conv = self.dwconv(zero_masked(v.transpose(1, 2), mask))      # [B, dim, T]
        # both maps from the branches before either is gated, as the paper
        if self.kind == "window":     # conv -> channel gate of the attention; attention -> step gate
            channel_gate = self.channel_gate(conv, mask)
            step_gate = self.spatial_map(attended)
            attended, conv = attended * torch.sigmoid(channel_gate), conv * torch.sigmoid(step_gate)
        else:                         # conv -> step gate of the attention; attention -> channel gate
            step_gate = self.spatial_map(conv)
            channel_gate = self.channel_gate(attended, mask)
            attended, conv = attended * torch.sigmoid(step_gate), conv * torch.sigmoid(channel_gate)
        return self.proj((attended + conv).transpose(1, 2))


class SpatialGateFFN(nn.Module):
    """SGFN: linear to ``hidden`` channels, GELU, then the first half gated by a 3-wide depthwise
    conv of the LayerNorm-ed second half, linear back to ``dim``. x [B, T, dim] -> [B, T, dim]."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        if hidden < 2 or hidden % 2:
            raise ValueError(f"SGFN hidden={hidden} must be an even number >= 2 (split in two halves)")
        self.fc1 = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden // 2)
        self.conv = nn.Conv1d(hidden // 2, hidden // 2, 3, padding=1, groups=hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x1, x2 = F.gelu(self.fc1(x)).chunk(2, dim=-1)
        gate = self.conv(zero_masked(self.norm(x2).transpose(1, 2), mask)).transpose(1, 2)
        return self.fc2(x1 * gate)


class DATBlock(nn.Module):
    """x + AIM(LN(x)), then x + SGFN(LN(x))."""

    def __init__(self, dim: int, num_heads: int, attention: str, window: int, expansion: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = AdaptiveInteraction(dim, num_heads, attention, window)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = SpatialGateFFN(dim, 2 * max(1, round(dim * expansion / 2)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.ffn(self.norm2(x), mask)


class ResidualGroup(nn.Module):
    """Blocks alternating window (even index) and channel (odd index) attention, a 3-wide conv,
    and a shortcut over the group."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, expansion: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            DATBlock(dim, num_heads, ATTENTIONS[i % 2], window, expansion) for i in range(depth))
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for block in self.blocks:
            h = block(h, mask)
        return x + self.conv(zero_masked(h.transpose(1, 2), mask)).transpose(1, 2)


class DATEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]; see the module docstring."""

    def __init__(self, in_channels: int, repr_dim: int = 128, dim: int = 64, groups: int = 2,
                 depth: int = 2, num_heads: int = 4, window: int = 16, expansion: float = 2.0):
        super().__init__()
        for key, value in (("dim", dim), ("groups", groups), ("depth", depth),
                           ("num_heads", num_heads), ("window", window)):
            if int(value) < 1:
                raise ValueError(f"dat: {key}={value} must be >= 1")
        if dim % num_heads:
            raise ValueError(f"dat: dim={dim} must be divisible by num_heads={num_heads}")
        if expansion <= 0:
            raise ValueError(f"dat: expansion={expansion} must be > 0 (the SGFN width / dim)")
        self.conv_first = nn.Conv1d(in_channels, dim, 3, padding=1)
        self.groups = nn.ModuleList(
            ResidualGroup(dim, depth, num_heads, window, expansion) for _ in range(groups))
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv1d(dim, dim, 3, padding=1)
        self.out = nn.Linear(dim, repr_dim)
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            mask = mask.to(torch.bool)
        first = self.conv_first(zero_masked(torch.nan_to_num(x, nan=0.0).transpose(1, 2), mask))
        h = first.transpose(1, 2)
        for group in self.groups:
            h = group(h, mask)
        h = self.norm(h).transpose(1, 2)
        return self.out((self.conv_after_body(zero_masked(h, mask)) + first).transpose(1, 2))
