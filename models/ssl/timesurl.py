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

import math

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


def _random_true(candidates: torch.Tensor) -> torch.Tensor:
    """Per row of the bool [R, T] ``candidates``, the index of one True entry drawn uniformly
    (any index for a row without one); on the tensors' device, no host round trip."""
    keys = torch.rand(candidates.shape, device=candidates.device)
    return keys.masked_fill(~candidates, -1.0).argmax(dim=1)


def time_segment_mask(times: torch.Tensor, observed: torch.Tensor, segment_num: int = 3,
                      ratio: float = 0.05) -> torch.Tensor:
    """The official time-sensitive segment sampling. times [B, T] (time stamp of each
    position, increasing along T), observed [B, T, C] (True = a value to use). Returns
    hidden [B, T, C].

    Per (series, channel) over the observed positions: a segment lasts ``ratio`` x (last -
    first observed time); a start is drawn among the observed times that leave room for a
    whole segment and are not inside/just before an earlier segment; the segment hides the
    observed positions from the start on with start <= time <= start + length. As in the
    official code, if no start is left for a further draw (also after the last segment)
    nothing is hidden in that channel. The draws are sequential within a channel, so the
    ``segment_num`` draws loop; every (series, channel) draws at once, on the device."""
    b, t, c = observed.shape
    dev = observed.device
    obs = observed.permute(0, 2, 1).reshape(b * c, t)           # one row per (series, channel)
    tm = times.to(torch.float64).unsqueeze(1).expand(b, c, t).reshape(b * c, t)
    first = tm.masked_fill(~obs, math.inf).amin(dim=1, keepdim=True)
    last = tm.masked_fill(~obs, -math.inf).amax(dim=1, keepdim=True)
    span = (last - first) * ratio
    available = obs & (tm < last - span)
    position = torch.arange(t, device=dev).view(1, -1)
    alive = available.any(dim=1)
    chosen = torch.zeros_like(obs)
    k = _random_true(available).unsqueeze(1)
    for _ in range(segment_num):
        start = tm.gather(1, k)
        segment = obs & (position >= k) & (tm >= start) & (tm <= start + span)
        chosen |= segment
        available &= ~segment & ~((tm > start - span) & (tm < start))
        alive &= available.any(dim=1)
        k = _random_true(available).unsqueeze(1)
    hidden = chosen & alive.unsqueeze(1)
    return hidden.view(b, c, t).permute(0, 2, 1)


def time_split(x: torch.Tensor):
    """The official collator's split of each series' time stamps into two complementary
    subsets. x [B, T, C] -> two (values [B, T, C], times [B, T], valid [B, T]): the chosen
    steps in time order, zero-padded at the end (valid False there); times = the original
    step indices (every stamp of the grid, observed or not, is a time stamp).

    Per series: n = max(1, int(U(0.3, 0.7) T)) steps chosen, n_dense = max(1, int(U(0.4, 0.6)
    n)) of them from a random half of the steps ("dense") and the rest from the other half
    (equal intervals: the halves are a random partition). All series draw at once."""
    b, t, _ = x.shape
    dev = x.device
    half = t // 2
    n_sel = (torch.empty(b, dtype=torch.float64, device=dev).uniform_(0.3, 0.7) * t).long().clamp(min=1)
    n_dense = (torch.empty(b, dtype=torch.float64, device=dev).uniform_(0.4, 0.6) * n_sel).long().clamp(min=1)
    perm = torch.rand(b, t, device=dev).argsort(dim=1)          # perm[:, :half] dense, rest sparse
    place = torch.arange(t, device=dev).view(1, -1)
    take = torch.where(place < half, place < n_dense.unsqueeze(1),
                       place - half < (n_sel - n_dense).unsqueeze(1))
    first = torch.zeros(b, t, dtype=torch.bool, device=dev).scatter_(1, perm, take)
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
        # each view and its masked copy go through the encoder as one batch: the encoder
        # treats samples independently, so this is the four passes in two
        z1, h1 = self.encoder(torch.cat([v1, v1.masked_fill(m1, 0.0)])).chunk(2)
        z2, h2 = self.encoder(torch.cat([v2, v2.masked_fill(m2, 0.0)])).chunk(2)
        r1, r2 = self.head(h1), self.head(h2)
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
