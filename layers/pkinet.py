"""PKINet (Cai et al., "Poly Kernel Inception Network for Remote Sensing Detection", CVPR 2024)
in 1-D: poly-kernel inception blocks with context anchor attention.

``PolyKernelInception`` (the PKI module): a small-kernel depthwise conv L = DW_3(X), then
parallel depthwise convs of growing kernel sizes (5, 7, 9, 11: k = (m + 1) * 2 + 1, no
dilation) on L, summed with L and fused by a pointwise conv: P = PW(L + sum_m DW_k_m(L)).

``ContextAnchorAttention`` (CAA): A = sigmoid(PW_2(S_2(S_1(PW_1(AvgPool_7(X)))))). In 2-D S_1 and
S_2 are a horizontal (1 x k) and a vertical (k x 1) depthwise strip conv, a cheap stand-in for a
k x k depthwise kernel on the pooled context. A series has one axis, so both strips run along
time: two stacked depthwise convs of length k, a separable long kernel reaching 2k - 1 steps
with the paper's 2k weights per channel (k = 11 + 2i for the i-th block of a stage, as the
paper). The gate multiplies the PKI module's output: P + A * P.

``PKIBlock``: BN -> pointwise (BN, SiLU) -> PKI module and CAA on that same input -> P + A * P
-> pointwise (BN, SiLU), added to the input with a learnable per-channel layer scale; then
BN -> ConvFFN (LayerNorm, pointwise expansion, depthwise 3-tap conv, global-sigmoid gate
x * sigmoid(mean_t x), pointwise) added the same way.

``PKINetEncoder``: x [B, T, C] -> [B, T, repr_dim]: stem (three 3-tap convs, BN, SiLU), stages
in the paper's cross-stage-partial form (a width-changing 3-tap conv, a pointwise split in two
halves: one half through a ConvFFN shortcut, the other through the stage's PKI blocks one after
another; concatenated and fused by two pointwise convs), a pointwise projection to repr_dim.

Choices for 1-D ECG:
- No downsampling (the paper's stem and each stage halve the resolution): every step keeps its
  own output, so the 3-tap convs that open the stem and the stages have stride 1.
- Kernel sizes are the paper's (3, 5, 7, 9, 11: 17 to 61 ms at 180 Hz) and CAA's 7-step average
  pooling likewise; the stacked blocks and CAA's two strips (2k - 1 >= 21 steps) give the
  longer context.
- A stage's PKI blocks run one after another; the public code instead applies them in parallel
  to the same input and sums their outputs.
- Unobserved steps (``mask`` False, NaN inputs zeroed) are zeroed again before every
  convolution or pooling over time, and the ConvFFN's global gate averages observed steps only,
  so in eval mode the observed steps of a padded series get exactly what the series alone gets
  (BatchNorm in training mode still counts the padded steps in its batch statistics).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from layers.step_mask import observed_mean, zero_unobserved


def depthwise(channels: int, kernel_size: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(in_channels, out_channels, kernel_size,
                                   padding=kernel_size // 2, bias=False),
                         nn.BatchNorm1d(out_channels), nn.SiLU())


class MaskedConvBNAct(nn.Module):
    """conv_bn_act whose kernel spans time: unobserved steps are zeroed before it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.body = conv_bn_act(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(zero_unobserved(x, keep))


def check_kernel_sizes(kernel_sizes, key: str = "kernel_sizes", min_count: int = 1) -> tuple[int, ...]:
    ks = tuple(int(k) for k in kernel_sizes)
    if len(ks) < min_count or any(k < 1 or k % 2 == 0 for k in ks):
        raise ValueError(f"pkinet: {key} must list at least {min_count} odd positive integers "
                         f"(same-length output), got {list(ks)}")
    return ks


class PolyKernelInception(nn.Module):
    """P = PW(L + sum_m DW_k_m(L)), L = DW_k_0(X) on [B, C, T]; kernel_sizes = (k_0, k_1, ...)."""

    def __init__(self, channels: int, kernel_sizes=(3, 5, 7, 9, 11)):
        super().__init__()
        ks = check_kernel_sizes(kernel_sizes, min_count=2)
        self.local = depthwise(channels, ks[0])
        self.branches = nn.ModuleList(depthwise(channels, k) for k in ks[1:])
        self.fuse = conv_bn_act(channels, channels, 1)

    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One depthwise kernel [C, 1, k_max] and bias [C] equal to identity + the branches.

        The parallel convs are linear in L and share its zero padding, so their sum is one conv
        with the centred, zero-padded kernels added (what PKINet-v2 calls re-parameterisation):
        the same function and gradients as running the branches apart, at the cost of one conv.
        """
        half = max(b.kernel_size[0] for b in self.branches) // 2
        weight = F.pad(torch.ones_like(self.branches[0].weight[:, :, :1]), (half, half))  # L itself
        for b in self.branches:
            pad = half - b.kernel_size[0] // 2
            weight = weight + F.pad(b.weight, (pad, pad))
        return weight, sum(b.bias for b in self.branches)

    def branch_sum(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """L + sum_m DW_k_m(L): the multi-scale context before the pointwise fusion."""
        local = zero_unobserved(self.local(zero_unobserved(x, keep)), keep)
        weight, bias = self.merged_kernel()
        return F.conv1d(local, weight, bias, padding=weight.size(-1) // 2, groups=local.size(1))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.fuse(self.branch_sum(x, keep))


class ContextAnchorAttention(nn.Module):
    """Gate A in (0, 1), [B, C, T], from the pooled context of x [B, C, T] (module docstring)."""

    def __init__(self, channels: int, kernel_size: int = 11, pool_size: int = 7):
        super().__init__()
        kernel_size, pool_size = int(kernel_size), int(pool_size)
        if kernel_size < 1 or kernel_size % 2 == 0 or pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f"pkinet: caa_kernel_size and the pooling size must be odd positive "
                             f"integers, got {kernel_size} and {pool_size}")
        # count_include_pad: the zero padding counts towards the average, as the paper's AvgPool2d
        self.pool = nn.AvgPool1d(pool_size, stride=1, padding=pool_size // 2)
        self.conv1 = nn.Conv1d(channels, channels, 1)
        self.strip1 = depthwise(channels, kernel_size)
        self.strip2 = depthwise(channels, kernel_size)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        a = self.conv1(self.pool(zero_unobserved(x, keep)))
        a = self.strip1(zero_unobserved(a, keep))
        a = self.strip2(zero_unobserved(a, keep))
        return torch.sigmoid(self.conv2(a))


class ConvFFN(nn.Module):
    """LayerNorm -> PW (x scale) -> DW_k -> x * sigmoid(mean_t x) -> PW, on [B, C, T]."""

    def __init__(self, channels: int, out_channels: int | None = None, scale: float = 4.0,
                 kernel_size: int = 3, dropout: float = 0.0, add_identity: bool = False):
        super().__init__()
        hidden = max(1, int(channels * scale))
        out_channels = out_channels or channels
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Conv1d(channels, hidden, 1)
        self.dw = depthwise(hidden, int(kernel_size))
        self.project = nn.Conv1d(hidden, out_channels, 1)
        self.dropout = nn.Dropout(dropout)
        self.add_identity = add_identity and out_channels == channels

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        h = self.expand(self.norm(x.transpose(1, 2)).transpose(1, 2))
        h = self.dw(zero_unobserved(h, keep))
        h = self.dropout(h * torch.sigmoid(observed_mean(h, keep)))
        h = self.dropout(self.project(h))
        return x + h if self.add_identity else h


class PKIBlock(nn.Module):
    """x + g1 * PKI-with-CAA(BN(x)); then x + g2 * ConvFFN(BN(x)), on [B, C, T]."""

    def __init__(self, channels: int, kernel_sizes=(3, 5, 7, 9, 11), caa_kernel_size: int = 11,
                 ffn_scale: float = 4.0, ffn_kernel_size: int = 3, dropout: float = 0.0,
                 layer_scale: float = 1.0):
        super().__init__()
        self.norm1 = nn.BatchNorm1d(channels)
        self.pre = conv_bn_act(channels, channels, 1)
        self.inception = PolyKernelInception(channels, kernel_sizes)
        self.caa = ContextAnchorAttention(channels, caa_kernel_size)
        self.post = conv_bn_act(channels, channels, 1)
        self.norm2 = nn.BatchNorm1d(channels)
        self.ffn = ConvFFN(channels, scale=ffn_scale, kernel_size=ffn_kernel_size, dropout=dropout)
        self.gamma1 = nn.Parameter(torch.full((channels, 1), float(layer_scale)))
        self.gamma2 = nn.Parameter(torch.full((channels, 1), float(layer_scale)))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        y = self.pre(self.norm1(x))
        p = self.inception(y, keep)
        p = p + p * self.caa(y, keep)          # the paper's (A ⊙ P) ⊕ P
        x = x + self.gamma1 * self.post(p)
        return x + self.gamma2 * self.ffn(self.norm2(x), keep)


class PKIStage(nn.Module):
    """Cross-stage-partial stage (module docstring) on [B, C, T]."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, kernel_sizes,
                 caa_kernel_size: int, expansion: float, ffn_scale: float, shortcut_ffn_scale: float,
                 shortcut_ffn_kernel_size: int, dropout: float, layer_scale: float):
        super().__init__()
        hidden = max(1, int(out_channels * expansion))
        self.entry = MaskedConvBNAct(in_channels, out_channels, 3)
        self.split = conv_bn_act(out_channels, 2 * hidden, 1)
        self.shortcut = ConvFFN(hidden, scale=shortcut_ffn_scale,
                                kernel_size=shortcut_ffn_kernel_size, add_identity=True)
        self.blocks = nn.ModuleList(
            PKIBlock(hidden, kernel_sizes, caa_kernel_size + 2 * i, ffn_scale, 3, dropout, layer_scale)
            for i in range(num_blocks))
        self.merge = nn.Sequential(conv_bn_act(2 * hidden, out_channels, 1),
                                   conv_bn_act(out_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        a, b = self.split(self.entry(x, keep)).chunk(2, dim=1)
        a = self.shortcut(a, keep)
        for block in self.blocks:
            b = block(b, keep)
        return self.merge(torch.cat([a, b], dim=1))


class PKINetEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim] (module docstring); ``mask`` bool [B, T], True = observed."""

    def __init__(self, in_channels: int, repr_dim: int = 128, stem_width: int = 16,
                 widths=(32, 64), depths=(2, 2), kernel_sizes=(3, 5, 7, 9, 11),
                 caa_kernel_size: int = 11, expansion: float = 0.5, ffn_scale: float = 4.0,
                 shortcut_ffn_scale: float = 4.0, shortcut_ffn_kernel_size: int = 5,
                 dropout: float = 0.1, layer_scale: float = 1.0):
        super().__init__()
        widths, depths = [int(w) for w in widths], [int(d) for d in depths]
        if not widths or len(widths) != len(depths):
            raise ValueError(f"pkinet: widths and depths need one entry per stage, got "
                             f"widths={widths}, depths={depths}")
        if min(widths) < 1 or min(depths) < 1 or int(stem_width) < 1:
            raise ValueError(f"pkinet: stem_width, widths and depths must be positive, got "
                             f"stem_width={stem_width}, widths={widths}, depths={depths}")
        if not 0 < float(expansion) <= 1:
            raise ValueError(f"pkinet: expansion (the share of a stage's width that goes through "
                             f"its PKI blocks) must be in (0, 1], got {expansion}")
        ks = check_kernel_sizes(kernel_sizes, min_count=2)
        stem = int(stem_width)
        self.stem = nn.ModuleList([MaskedConvBNAct(in_channels, stem, 3),
                                   MaskedConvBNAct(stem, stem, 3), MaskedConvBNAct(stem, stem, 3)])
        stages, ch = [], stem
        for w, d in zip(widths, depths):
            stages.append(PKIStage(ch, w, d, ks, int(caa_kernel_size), float(expansion),
                                   float(ffn_scale), float(shortcut_ffn_scale),
                                   int(shortcut_ffn_kernel_size), float(dropout), float(layer_scale)))
            ch = w
        self.stages = nn.ModuleList(stages)
        self.proj = nn.Conv1d(ch, repr_dim, 1)
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        keep = None if mask is None else mask.to(torch.bool).unsqueeze(1).to(x.dtype)
        h = torch.nan_to_num(x, nan=0.0).transpose(1, 2)
        for layer in self.stem:
            h = layer(h, keep)
        for stage in self.stages:
            h = stage(h, keep)
        return self.proj(h).transpose(1, 2)
