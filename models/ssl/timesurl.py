"""TimesURL (Liu & Chen, "TimesURL: Self-supervised Contrastive Learning for Universal Time
Series Representation Learning", AAAI 2024), built on TS2Vec's encoder.

Training step (``forward`` in train mode), as the official code (Alrash/TimesURL) does it:

0. Time-stamp split (official collator, ``time_split=True``): the time stamps of every
   series are split at random into two complementary subsets (the first takes
   U(0.3, 0.7) of the steps, half of it - U(0.4, 0.6) - drawn from the "dense" half of the
   stamps, the rest from the "sparse" half; on a regular grid every stamp is equally
   dense, so the halves are a random partition). Each subset, in time order, becomes a
   shorter series, zero-padded at the end to the full length, and steps 1-3 are run on
   each of the two; their losses are summed.
1. Time-reconstruction masks (official time-sensitive sampling): per (series, channel)
   ``segment_num`` non-overlapping time intervals, each ``mask_ratio_per_seg`` of the
   observed time span, are hidden.
2. FTAug: TS2Vec's two overlapping random crops; the second view is then frequency
   mixed (``freq_mix_mode="official"``): on the full complex FFT over time, a random
   fraction ``freq_mix_rate`` of the coefficients (real and imaginary part, i.e. amplitude
   and phase) are replaced by those of another series of the batch (a random permutation,
   cropped the same way), and the view becomes the modulus of the inverse FFT.
   ``freq_mix_mode="rfft"`` is the real-valued variant (rFFT bins, irfft back).
3. The encoder (no timestamp masking, as in the official code) gives each view's
   representations z; the same encoder on the view with its hidden entries zeroed feeds
   an MLP head (D -> 4D -> C) that reconstructs them.

The loss (utils/losses/timesurl.py) is DualCon on the overlapping steps plus the masked
reconstruction error. Encoding is TS2Vec's (averaged weights, max pooling, sliding).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.ssl.ts2vec import TS2Vec, random_overlapping_crops, take_per_row

FREQ_MIX_MODES = ("official", "rfft")


def frequency_mix(x: torch.Tensor, rate: float = 0.5, partner: torch.Tensor | None = None,
                  return_mask: bool = False):
    """Real-valued variant: replace a random fraction ``rate`` of the rFFT bins of each
    series (per channel) of x [B, T, C] with the same bins of another series of the batch
    (``partner``, default a random permutation of x). Length, dtype and every other bin are
    kept exactly."""
    b, t, _ = x.shape
    if partner is None:
        partner = x[torch.randperm(b, device=x.device)] if b > 1 else x
    xf = torch.fft.rfft(x, dim=1)
    pf = torch.fft.rfft(partner, dim=1)
    chosen = torch.rand(xf.shape, device=x.device) < rate          # B x F x C
    mixed = torch.fft.irfft(torch.where(chosen, pf, xf), n=t, dim=1).to(x.dtype)
    return (mixed, chosen) if return_mask else mixed


def frequency_mix_official(x: torch.Tensor, rate: float = 0.5,
                           partner: torch.Tensor | None = None, return_mask: bool = False):
    """The official code's frequency mixing of x [B, T, C] over time:

    - full complex FFT; each coefficient (per series and channel) is chosen with
      probability ``rate`` and replaced - real and imaginary part - by the partner's
      (default: a random permutation of the batch, which may pair a series with itself);
    - three coefficient positions per (series, channel) are never chosen: the official
      code sorts the amplitudes in descending order and keeps the positions k whose k-th
      largest coefficient is one of the bins 0, 1, 2 (reproduced as written);
    - the result is the modulus of the inverse FFT (non-negative, since the mixed spectrum
      is no longer Hermitian)."""
    b = x.size(0)
    if partner is None:
        partner = x[torch.randperm(b, device=x.device)]
    xf = torch.fft.fft(x, dim=1)
    pf = torch.fft.fft(partner, dim=1)
    chosen = torch.rand(xf.shape, device=x.device) < rate
    order = xf.abs().argsort(dim=1, descending=True)
    chosen &= order > 2
    mixed = torch.fft.ifft(torch.where(chosen, pf, xf), dim=1).abs().to(x.dtype)
    return (mixed, chosen) if return_mask else mixed


def segment_mask(batch: int, length: int, channels: int, segment_num: int = 3,
                 ratio: float = 0.05, device=None) -> torch.Tensor:
    """Boolean [B, T, C], True = hidden for reconstruction: ``segment_num`` segments of
    max(1, ratio * T) steps per (series, channel), starts drawn from torch's RNG (a simple
    index-space variant; the model uses ``time_segment_mask``)."""
    seg = max(1, int(ratio * length))
    starts = torch.randint(0, max(length - seg, 0) + 1, (batch, 1, channels, segment_num),
                           device=device)
    steps = torch.arange(length, device=device).view(1, -1, 1, 1)
    return ((steps >= starts) & (steps < starts + seg)).any(dim=-1)


def _pick(candidates: np.ndarray) -> int:
    # torch's generator, so seeding the run seeds the segments
    return int(candidates[int(torch.randint(0, len(candidates), (1,)))])


def time_segment_mask(times: torch.Tensor, observed: torch.Tensor, segment_num: int = 3,
                      ratio: float = 0.05) -> torch.Tensor:
    """The official time-sensitive segment sampling. times [B, T] (time stamp of each
    position), observed [B, T, C] (True = a value to use). Returns hidden [B, T, C].

    Per (series, channel) over the observed positions: a segment lasts ``ratio`` x (last -
    first observed time); a start is drawn among the observed times that leave room for a
    whole segment and are not inside/just before an earlier segment; the segment hides the
    observed positions with start <= time <= start + length. As in the official code, if
    no start is left for a further draw (also after the last segment) nothing is hidden in
    that channel. The draws are sequential per channel, so this loops; it works on NumPy
    arrays because per-element torch calls made it 8x slower at 64 channels."""
    b, t, c = observed.shape
    hidden = np.zeros((b, t, c), dtype=bool)
    times_np = times.detach().cpu().numpy()
    obs_np = observed.detach().cpu().numpy().astype(bool)
    for i in range(b):
        for ch in range(c):
            pos = np.flatnonzero(obs_np[i, :, ch])
            if len(pos) == 0:
                continue
            tp = times_np[i, pos]
            span = float(tp[-1] - tp[0]) * ratio
            available = tp < tp[-1] - span
            if not available.any():
                continue
            k = _pick(np.flatnonzero(available))
            chosen = np.zeros(len(pos), dtype=bool)
            ok = True
            for _ in range(segment_num):
                start = tp[k]
                seg = (tp >= start) & (tp <= start + span)
                seg[:k] = False
                chosen |= seg
                available &= ~seg
                available &= ~((tp > start - span) & (tp < start))
                if not available.any():
                    ok = False
                    break
                k = _pick(np.flatnonzero(available))
            if ok:
                hidden[i, pos[chosen], ch] = True
    return torch.from_numpy(hidden).to(observed.device)


def time_split(x: torch.Tensor):
    """The official collator's split of each series' time stamps into two complementary
    subsets. x [B, T, C] -> two (values [B, T, C], times [B, T], valid [B, T]): the chosen
    steps in time order, zero-padded at the end (valid False there); times = the original
    step indices (every stamp of the grid, observed or not, is a time stamp)."""
    b, t, _ = x.shape
    dev = x.device
    first = torch.zeros(b, t, dtype=torch.bool, device=dev)
    half = t // 2
    for i in range(b):
        n_sel = max(1, int(float(torch.empty(1).uniform_(0.3, 0.7)) * t))
        n_dense = max(1, int(float(torch.empty(1).uniform_(0.4, 0.6)) * n_sel))
        perm = torch.randperm(t, device=dev)       # equal intervals: dense/sparse halves are a random partition
        dense, sparse = perm[:half], perm[half:]
        first[i, dense[:n_dense]] = True
        first[i, sparse[:n_sel - n_dense]] = True
    idx = torch.arange(t, device=dev).expand(b, t)
    out = []
    for sel in (first, ~first):
        key = torch.where(sel, idx, idx + t)         # chosen steps first, in time order
        order = key.argsort(dim=1)
        valid = torch.arange(t, device=dev).view(1, -1) < sel.sum(dim=1, keepdim=True)
        vals = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
        vals = vals.masked_fill(~valid.unsqueeze(-1), 0.0)
        out.append((vals, order.to(x.dtype), valid))
    return out


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
                 encode_batch_size: int = 256, time_split: bool = True,
                 freq_mix_mode: str = "official"):
        super().__init__(in_channels, output_dims, hidden_dims, depth, kernel_size,
                         mask_mode="all_true", repr_dropout=repr_dropout,
                         temporal_unit=temporal_unit, max_train_length=max_train_length,
                         average_weights=average_weights, encode_batch_size=encode_batch_size)
        if freq_mix_mode not in FREQ_MIX_MODES:
            raise ValueError(f"unknown freq_mix_mode '{freq_mix_mode}'; choose one of "
                             f"{', '.join(FREQ_MIX_MODES)}")
        self.head = ReconstructionHead(output_dims, in_channels)
        self.in_channels = in_channels
        self.freq_mix_rate = freq_mix_rate
        self.segment_num, self.mask_ratio_per_seg = segment_num, mask_ratio_per_seg
        self.time_split, self.freq_mix_mode = time_split, freq_mix_mode

    @classmethod
    def budget_values(cls, values: int, in_channels: int) -> int:
        """The values TS2Vec's 200/600-iteration rule counts: the official loader appends a
        time-stamp channel before the rule (``train_data.size``), so C + 1 channels."""
        return values // in_channels * (in_channels + 1)

    def _mix(self, v: torch.Tensor) -> torch.Tensor:
        fn = frequency_mix_official if self.freq_mix_mode == "official" else frequency_mix
        return fn(torch.nan_to_num(v), self.freq_mix_rate).masked_fill(torch.isnan(v),
                                                                       float("nan"))

    def _pair(self, x: torch.Tensor, times: torch.Tensor, valid: torch.Tensor) -> dict:
        b, t, c = x.shape
        observed = valid.unsqueeze(-1) & ~torch.isnan(x)
        hide = time_segment_mask(times, observed, self.segment_num, self.mask_ratio_per_seg)
        s1, l1, s2, l2, overlap = random_overlapping_crops(t, b, self.temporal_unit, x.device)
        v1, m1 = take_per_row(x, s1, l1), take_per_row(hide, s1, l1)
        v2, m2 = take_per_row(x, s2, l2), take_per_row(hide, s2, l2)
        # the official encoder multiplies its input by the observed mask, so the padding
        # stays zero after mixing
        v2 = self._mix(v2).masked_fill(~take_per_row(valid, s2, l2).unsqueeze(-1), 0.0)
        z1, z2 = self.encoder(v1), self.encoder(v2)
        r1 = self.head(self.encoder(v1.masked_fill(m1, 0.0)))
        r2 = self.head(self.encoder(v2.masked_fill(m2, 0.0)))
        first, last = slice(l1 - overlap, l1), slice(0, overlap)
        return {"z1": z1[:, first], "z2": z2[:, last],
                "recon1": r1[:, first], "recon2": r2[:, last],
                "target1": torch.nan_to_num(v1[:, first]), "target2": torch.nan_to_num(v2[:, last]),
                "rmask1": m1[:, first], "rmask2": m2[:, last]}

    def forward(self, batch: dict) -> dict:
        x = self._train_window(batch["x"])
        b, t, _ = x.shape
        if not self.time_split:
            times = torch.arange(t, device=x.device, dtype=x.dtype).expand(b, t)
            valid = torch.ones(b, t, dtype=torch.bool, device=x.device)
            return self._pair(x, times, valid)
        pairs = [self._pair(v, tm, ok) for v, tm, ok in time_split(x)]
        return {"pairs": pairs}
