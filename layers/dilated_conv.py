"""TS2Vec's timestamp encoder (Yue et al., AAAI 2022), also the backbone of TimesURL.

x [B, T, C] -> linear input projection to ``hidden_dims`` per time step -> timestamp
masking (masked steps' hidden vectors set to 0) -> ``depth`` residual blocks of two
dilated "same" convolutions (dilation 2**i, GELU before each conv) plus a final block
to ``output_dims`` -> dropout 0.1 -> representations [B, T, output_dims].

Missing values (NaN) are zeroed and always masked, so variable-length series padded
with NaN encode cleanly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_MODES = ("binomial", "continuous", "all_true", "all_false", "mask_last")


def live_taps(kernel_size: int, dilation: int, padding: int, length: int) -> tuple[int, int] | None:
    """The taps [first, last] of a zero-padded convolution that read at least one input step
    of a series of ``length`` steps: tap j reads offset j * dilation - padding from each
    output step, so it is live when that offset lies strictly inside (-length, length). The
    others only ever multiply the zero padding. None when no tap reads the series."""
    live = [j for j in range(kernel_size) if -length < j * dilation - padding < length]
    return (live[0], live[-1]) if live else None


class SamePadConv(nn.Module):
    """Conv1d whose output has the input's length for any kernel size and dilation.

    When only one tap reads the series (TS2Vec's dilations, 2**i up to 1024, on series
    shorter than the dilation: the outer taps fall wholly in the zero padding), the layer is
    computed as the per-step linear map it amounts to, one matrix product. The output and the
    gradients are those of the full convolution (the skipped taps add exact zeros and get
    zero gradient either way), up to float rounding. The product runs on a contiguous 2-D
    copy of the input: a strided 3-D one goes to oneDNN, whose kernel cache then grows by
    a new entry per call (GBs over an encoding pass)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        receptive_field = (kernel_size - 1) * dilation + 1
        self.padding = receptive_field // 2
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=self.padding,
                              dilation=dilation)
        # an even receptive field pads one step too many on the right
        self.trim = 1 if receptive_field % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, d = self.conv.kernel_size[0], self.conv.dilation[0]
        taps = live_taps(k, d, self.padding, x.size(-1))
        if k > 1 and taps is not None and taps[0] == taps[1] and self.padding == taps[0] * d:
            b, c, t = x.shape
            steps = x.transpose(1, 2).reshape(b * t, c)
            weight = self.conv.weight[:, :, taps[0]].t()
            out = (torch.addmm(self.conv.bias, steps, weight) if self.conv.bias is not None
                   else steps @ weight)
            return out.view(b, t, -1).transpose(1, 2)
        out = self.conv(x)
        return out[..., :-self.trim] if self.trim else out


class DilatedBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int,
                 final: bool = False):
        super().__init__()
        self.conv1 = SamePadConv(in_ch, out_ch, kernel_size, dilation)
        self.conv2 = SamePadConv(out_ch, out_ch, kernel_size, dilation)
        # 1x1 projection on the shortcut when the width changes (and, as in TS2Vec,
        # always on the last block)
        self.shortcut = nn.Conv1d(in_ch, out_ch, 1) if (in_ch != out_ch or final) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        x = self.conv1(F.gelu(x))
        x = self.conv2(F.gelu(x))
        return x + residual


class DilatedConvEncoder(nn.Module):
    """Stack of residual dilated blocks over [B, C, T]; block i has dilation 2**i."""

    def __init__(self, in_ch: int, channels: list[int], kernel_size: int = 3):
        super().__init__()
        self.net = nn.Sequential(*[
            DilatedBlock(channels[i - 1] if i > 0 else in_ch, channels[i], kernel_size,
                         dilation=2 ** i, final=(i == len(channels) - 1))
            for i in range(len(channels))
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def timestamp_mask(mode: str, batch: int, length: int, device, p: float = 0.5) -> torch.Tensor:
    """Boolean [B, T] mask, True = keep the time step. Random modes draw from torch's RNG
    so that ``seed=`` reproduces them."""
    if mode == "binomial":
        return torch.rand(batch, length, device=device) < p
    if mode == "continuous":  # TS2Vec's alternative: 5 random spans of 10 % each
        keep = torch.ones(batch, length, dtype=torch.bool, device=device)
        n, span = max(min(5, length // 2), 1), max(int(0.1 * length), 1)
        starts = torch.randint(0, length - span + 1, (batch, n), device=device)
        steps = torch.arange(length, device=device)
        for j in range(n):
            s = starts[:, j:j + 1]
            keep &= ~((steps >= s) & (steps < s + span))
        return keep
    if mode == "all_true":
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    if mode == "all_false":
        return torch.zeros(batch, length, dtype=torch.bool, device=device)
    if mode == "mask_last":
        keep = torch.ones(batch, length, dtype=torch.bool, device=device)
        keep[:, -1] = False
        return keep
    raise ValueError(f"unknown timestamp mask mode '{mode}'; choose one of {', '.join(MASK_MODES)}")


class TSEncoder(nn.Module):
    """The TS2Vec encoder. ``mask_mode`` is used in training; evaluation keeps every step
    ('all_true') unless ``forward`` is given another mode or a [B, T] boolean mask."""

    def __init__(self, input_dims: int, output_dims: int = 320, hidden_dims: int = 64,
                 depth: int = 10, kernel_size: int = 3, mask_mode: str = "binomial",
                 repr_dropout: float = 0.1):
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode '{mask_mode}'; choose one of {', '.join(MASK_MODES)}")
        self.input_dims, self.output_dims = input_dims, output_dims
        self.mask_mode = mask_mode
        self.input_fc = nn.Linear(input_dims, hidden_dims)
        self.feature_extractor = DilatedConvEncoder(
            hidden_dims, [hidden_dims] * depth + [output_dims], kernel_size)
        self.repr_dropout = nn.Dropout(repr_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | str | None = None) -> torch.Tensor:
        """x [B, T, C] -> [B, T, output_dims]. ``mask``: None (mode by train/eval), a mode
        name, or a boolean [B, T] tensor (True = keep)."""
        if x.dim() != 3 or x.size(-1) != self.input_dims:
            raise ValueError(f"TSEncoder expects x [batch, time, {self.input_dims}] (channels last), "
                             f"got {tuple(x.shape)}")
        observed = ~torch.isnan(x).any(dim=-1)
        x = torch.nan_to_num(x, nan=0.0)
        h = self.input_fc(x)
        if mask is None:
            mask = self.mask_mode if self.training else "all_true"
        if isinstance(mask, str):
            mask = timestamp_mask(mask, h.size(0), h.size(1), h.device)
        keep = mask.to(torch.bool) & observed
        h = h * keep.unsqueeze(-1).to(h.dtype)
        h = self.feature_extractor(h.transpose(1, 2))
        return self.repr_dropout(h).transpose(1, 2)
