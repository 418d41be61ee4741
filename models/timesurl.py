"""TimesURL (Liu & Chen, "TimesURL: Self-supervised Contrastive Learning for Universal Time
Series Representation Learning", AAAI 2024), built on TS2Vec's encoder.

Training step (``forward`` in train mode):

1. Time-reconstruction masks: on the full series, ``segment_num`` segments of
   ``mask_ratio_per_seg`` x length steps per channel are hidden (official defaults 3, 5 %).
2. FTAug: TS2Vec's two overlapping random crops; the second view is then frequency
   mixed - a fraction ``freq_mix_rate`` of its rFFT bins (per channel) is replaced by the
   same bins of another series of the batch (also cropped), and transformed back.
3. The encoder (no timestamp masking, as in the official code) gives each view's
   representations z; the same encoder on the view with its segments zeroed feeds an MLP
   head (D -> 4D -> C) that reconstructs the hidden entries.

The loss (utils/losses_timesurl.py) is DualCon on the overlapping steps plus the masked
reconstruction error. Encoding is TS2Vec's (averaged weights, max pooling, sliding).

Left out on purpose: the official code additionally splits every series into two random
subsets of time stamps (for irregularly sampled data) and trains on each; the paper
describes FTAug as frequency mixing + cropping only, which is what is done here.
"""
from __future__ import annotations

import torch
from torch import nn

from models.ts2vec import TS2Vec, random_overlapping_crops, take_per_row


def frequency_mix(x: torch.Tensor, rate: float = 0.5, partner: torch.Tensor | None = None,
                  return_mask: bool = False):
    """Replace a random fraction ``rate`` of the rFFT bins of each series (per channel) of
    x [B, T, C] with the same bins of another series of the batch (``partner``, default a
    random permutation of x). Length, dtype and every other bin are kept exactly."""
    b, t, _ = x.shape
    if partner is None:
        partner = x[torch.randperm(b, device=x.device)] if b > 1 else x
    xf = torch.fft.rfft(x, dim=1)
    pf = torch.fft.rfft(partner, dim=1)
    chosen = torch.rand(xf.shape, device=x.device) < rate          # B x F x C
    mixed = torch.fft.irfft(torch.where(chosen, pf, xf), n=t, dim=1).to(x.dtype)
    return (mixed, chosen) if return_mask else mixed


def segment_mask(batch: int, length: int, channels: int, segment_num: int = 3,
                 ratio: float = 0.05, device=None) -> torch.Tensor:
    """Boolean [B, T, C], True = hidden for reconstruction: ``segment_num`` segments of
    max(1, ratio * T) steps per (series, channel), starts drawn from torch's RNG."""
    seg = max(1, int(ratio * length))
    starts = torch.randint(0, max(length - seg, 0) + 1, (batch, 1, channels, segment_num),
                           device=device)
    steps = torch.arange(length, device=device).view(1, -1, 1, 1)
    return ((steps >= starts) & (steps < starts + seg)).any(dim=-1)


class ReconstructionHead(nn.Module):
    """MLP from representations [B, T, D] to input values [B, T, C] (D -> 4D -> C)."""

    def __init__(self, repr_dim: int, out_channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(repr_dim, 4 * repr_dim), nn.ReLU(),
                                 nn.Linear(4 * repr_dim, out_channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class TimesURL(TS2Vec):
    def __init__(self, in_channels: int, output_dims: int = 320, hidden_dims: int = 64,
                 depth: int = 10, kernel_size: int = 3, repr_dropout: float = 0.1,
                 freq_mix_rate: float = 0.5, segment_num: int = 3,
                 mask_ratio_per_seg: float = 0.05, temporal_unit: int = 0,
                 max_train_length: int | None = 3000, average_weights: bool = True,
                 encode_batch_size: int = 256):
        super().__init__(in_channels, output_dims, hidden_dims, depth, kernel_size,
                         mask_mode="all_true", repr_dropout=repr_dropout,
                         temporal_unit=temporal_unit, max_train_length=max_train_length,
                         average_weights=average_weights, encode_batch_size=encode_batch_size)
        self.head = ReconstructionHead(output_dims, in_channels)
        self.freq_mix_rate = freq_mix_rate
        self.segment_num, self.mask_ratio_per_seg = segment_num, mask_ratio_per_seg

    def forward(self, batch: dict) -> dict:
        x = self._train_window(batch["x"])
        b, t, c = x.shape
        hide = segment_mask(b, t, c, self.segment_num, self.mask_ratio_per_seg, x.device)
        hide &= ~torch.isnan(x)           # only observed entries can be reconstructed
        s1, l1, s2, l2, overlap = random_overlapping_crops(t, b, self.temporal_unit, x.device)
        v1, m1 = take_per_row(x, s1, l1), take_per_row(hide, s1, l1)
        v2, m2 = take_per_row(x, s2, l2), take_per_row(hide, s2, l2)
        v2 = frequency_mix(torch.nan_to_num(v2), self.freq_mix_rate).masked_fill(
            torch.isnan(v2), float("nan"))
        z1, z2 = self.encoder(v1), self.encoder(v2)
        r1 = self.head(self.encoder(v1.masked_fill(m1, 0.0)))
        r2 = self.head(self.encoder(v2.masked_fill(m2, 0.0)))
        first, last = slice(l1 - overlap, l1), slice(0, overlap)
        return {"z1": z1[:, first], "z2": z2[:, last],
                "recon1": r1[:, first], "recon2": r2[:, last],
                "target1": torch.nan_to_num(v1[:, first]), "target2": torch.nan_to_num(v2[:, last]),
                "rmask1": m1[:, first], "rmask2": m2[:, last]}
