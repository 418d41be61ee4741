"""The denoiser of DDPM (Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
NeurIPS 2020) for 1-D series: a U-Net of wide-ResNet blocks with group normalisation, a
sinusoidal timestep embedding added inside every block, and self-attention at the lowest
resolution (the paper's 16x16 of a 32x32 image).

Input and output are channels-first [B, C, T] (Conv1d layout); any length T works: the series
is padded on the right to a multiple of 2 ** (levels - 1) and the output is cropped back.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The Transformer's sinusoidal position code of the timesteps ``t`` [B], laid out as the
    official DDPM code does: ``[sin(t * f_0..f_{h-1}), cos(t * f_0..f_{h-1})]`` with
    ``h = dim // 2`` and ``f_i = 10000 ** (-i / (h - 1))``; an odd ``dim`` gets a zero column."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device)
                      / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    # the paper's 32 groups, fewer when a (small) width is not a multiple of 32
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    # a block whose last layer starts at zero starts as the identity (as in the official code)
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv -> + timestep (and class) embedding -> GroupNorm -> SiLU ->
    dropout -> conv, added to the input (through a 1x1 conv when the width changes)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.drop = _norm(out_ch), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv1d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None]        # one shift per channel, over all steps
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Dot-product self-attention over time (``heads`` heads) after a GroupNorm, residual."""

    def __init__(self, channels: int, heads: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention_heads={heads} must divide the block's width {channels}")
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, T).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                           v.transpose(-1, -2))          # [B, heads, T, C/heads]
        return x + self.out(h.transpose(-1, -2).reshape(B, C, T))


class UNet1D(nn.Module):
    """eps_theta(x_t, t[, y]): [B, in_channels, T] -> [B, out_channels, T].

    ``channel_mults`` gives the width of each level (times ``base_channels``); each level has
    ``num_res_blocks`` residual blocks, then a stride-2 conv halves the length (not after the
    last level). The middle is ResBlock-attention-ResBlock; the way up mirrors the way down
    with one more block per level, each fed the matching skip (concatenated), and a nearest x2
    upsampling + conv between levels. ``num_classes > 0`` adds a class embedding to the time
    embedding; label ``num_classes`` is the null label (classifier-free guidance), also used
    when no label is given.
    """

    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 64,
                 channel_mults: Sequence[int] = (1, 2, 2), num_res_blocks: int = 2,
                 attention: bool = True, attention_heads: int = 1, dropout: float = 0.1,
                 num_classes: int = 0):
        super().__init__()
        self.base_channels, self.num_classes = base_channels, num_classes
        self.levels = len(channel_mults)
        emb_dim = 4 * base_channels                           # as the official code
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(),
                                      nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None

        def attn(ch: int) -> nn.Module:
            return AttentionBlock(ch, attention_heads) if attention else nn.Identity()

        self.conv_in = nn.Conv1d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [base_channels], base_channels            # widths of the skips, in order
        for level, mult in enumerate(channel_mults):
            lowest = level == self.levels - 1
            for _ in range(num_res_blocks):
                block = ResBlock(ch, base_channels * mult, emb_dim, dropout)
                ch = base_channels * mult
                self.down.append(nn.ModuleList([block, attn(ch) if lowest else nn.Identity()]))
                skips.append(ch)
            if not lowest:
                self.down.append(nn.Conv1d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout), attn(ch),
                                  ResBlock(ch, ch, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            lowest = level == self.levels - 1
            for _ in range(num_res_blocks + 1):
                block = ResBlock(ch + skips.pop(), base_channels * mult, emb_dim, dropout)
                ch = base_channels * mult
                self.up.append(nn.ModuleList([block, attn(ch) if lowest else nn.Identity()]))
            if level > 0:
                self.up.append(nn.Conv1d(ch, ch, 3, padding=1))   # after a nearest x2 upsampling
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), _zero(nn.Conv1d(ch, out_channels, 3, padding=1)))

    def embed(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The vector every block receives: MLP(sinusoid(t)) [+ class embedding of y]."""
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.class_emb is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes, dtype=torch.long)
            emb = emb + self.class_emb(y.long())
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[-1]
        multiple = 2 ** (self.levels - 1)
        h = F.pad(x, (0, -T % multiple))          # every halving exact, so skips align
        emb = self.embed(t, y)
        h = self.conv_in(h)
        hs = [h]
        for block in self.down:
            if isinstance(block, nn.Conv1d):      # downsampling
                h = block(h)
            else:
                h = block[1](block[0](h, emb))
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for block in self.up:
            if isinstance(block, nn.Conv1d):      # upsampling
                h = block(F.interpolate(h, scale_factor=2, mode="nearest"))
            else:
                h = block[1](block[0](torch.cat([h, hs.pop()], dim=1), emb))
        return self.out(h)[..., :T]
