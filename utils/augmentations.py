"""Time-series augmentations: small seeded callables on x [B, T, C] (channels last).

Every augmentation is called as ``aug(x, mask=None, generator=None)``:

- ``generator``: a ``torch.Generator``; the same generator state gives the same output.
  None draws from torch's global RNG (so ``seed=`` reproduces a run).
- ``mask``: optional observed-entry mask (bool [B, T] or [B, T, C], True = observed). When
  given, the call returns ``(x, mask)`` and augmentations that move time steps (crop,
  shift, warping, permutation) move the mask the same way; otherwise only x is returned.
- ``p``: probability of applying the augmentation, drawn per series when the output has
  the input's shape (otherwise once per batch).

Defaults follow Um et al. 2017 / Iwana & Uchida 2021 (jitter 0.03, scaling 0.1, magnitude
and time warping 0.2 with 4 knots, permutation up to 5 segments), TF-C (Zhang et al. 2022:
add/remove 10 % of the frequency components), TimesURL (frequency mixing of 50 % of the
bins), DINO-style random crops and Zhang et al. 2018 (mixup), Yun et al. 2019 (cutmix).

Views are composed from config: ``build_augmentations([{"name": "jitter", "sigma": 0.03},
{"name": "scaling", "p": 0.5}])`` -> ``Compose``; ``build_views(spec, n)`` gives one
pipeline per view (a list of lists = one list per view).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- random draws


def _uniform(shape, generator, device) -> torch.Tensor:
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _normal(shape, generator, device) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def _randint(low: int, high: int, shape, generator, device) -> torch.Tensor:
    """Integers uniform in [low, high)."""
    if generator is None:
        return torch.randint(low, high, shape, device=device)
    return torch.randint(low, high, shape, generator=generator, device=generator.device).to(device)


def _randperm(n: int, generator, device) -> torch.Tensor:
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


def _beta(alpha: float, generator) -> float:
    """One Beta(alpha, alpha) draw, seeded from the torch generator (torch's Beta takes none)."""
    seed = int(_randint(0, 2**62, (1,), generator, "cpu").item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


# ----------------------------------------------------------------------------- helpers


def _check(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.dim() != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"augmentations expect x [batch, time, channels] (channels last), got {shape}")


def resample(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of x [B, T, C] at fractional time positions [B, T'] in [0, T-1]."""
    t = x.size(1)
    pos = positions.clamp(0, t - 1)
    lo = pos.floor().long().clamp(max=t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo.to(pos.dtype)).unsqueeze(-1).to(x.dtype)
    idx_lo = lo.unsqueeze(-1).expand(-1, -1, x.size(2))
    idx_hi = hi.unsqueeze(-1).expand(-1, -1, x.size(2))
    return torch.gather(x, 1, idx_lo) * (1 - w) + torch.gather(x, 1, idx_hi) * w


def _resample_mask(mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Nearest-step resampling of a bool mask [B, T] or [B, T, C]."""
    idx = positions.round().long().clamp(0, mask.size(1) - 1)
    if mask.dim() == 2:
        return torch.gather(mask, 1, idx)
    return torch.gather(mask, 1, idx.unsqueeze(-1).expand(-1, -1, mask.size(2)))


def _smooth_curve(batch: int, channels: int, length: int, sigma: float, knots: int,
                  generator, device) -> torch.Tensor:
    """Random smooth curves [B, T, C] around 1: knots+2 values ~ N(1, sigma^2) evenly spaced
    over the series, joined by cubic (Keys) interpolation."""
    values = 1 + sigma * _normal((batch * channels, 1, 1, knots + 2), generator, device)
    curve = F.interpolate(values, size=(1, length), mode="bicubic", align_corners=True)
    return curve.view(batch, channels, length).transpose(1, 2)


# ----------------------------------------------------------------------------- base classes


class Augmentation:
    """Base: subclasses implement ``apply(x, mask, generator) -> (x, mask)``."""

    name = "augmentation"

    def __init__(self, p: float = 1.0):
        if not 0 <= p <= 1:
            raise ValueError(f"{self.name}: p={p} must lie in [0, 1]")
        self.p = float(p)

    def apply(self, x, mask, generator):
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None):
        _check(x)
        if self.p <= 0:
            out, out_mask = x, mask
        else:
            out, out_mask = self.apply(x, mask, generator)
            if self.p < 1:
                out, out_mask = self._random_apply(x, mask, out, out_mask, generator)
        return out if mask is None else (out, out_mask)

    def _random_apply(self, x, mask, out, out_mask, generator):
        if out.shape == x.shape:   # per series
            chosen = _uniform((x.size(0),), generator, x.device) < self.p
            out = torch.where(chosen.view(-1, 1, 1), out, x)
            if mask is not None and out_mask is not None and out_mask.shape == mask.shape:
                out_mask = torch.where(chosen.view(-1, *([1] * (mask.dim() - 1))), out_mask, mask)
            return out, out_mask
        if float(_uniform((1,), generator, "cpu")) < self.p:   # shape changes: whole batch
            return out, out_mask
        return x, mask

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Augmentation):
    """Apply augmentations in order, all drawing from the same generator."""

    name = "compose"

    def __init__(self, transforms: list):
        super().__init__(1.0)
        self.transforms = list(transforms)

    def apply(self, x, mask, generator):
        for t in self.transforms:
            if mask is None:
                x = t(x, None, generator)
            else:
                x, mask = t(x, mask, generator)
        return x, mask

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Identity(Augmentation):
    name = "identity"

    def apply(self, x, mask, generator):
        return x, mask


# ----------------------------------------------------------------------------- magnitude


class Jitter(Augmentation):
    """Additive Gaussian noise of standard deviation ``sigma``."""

    name = "jitter"

    def __init__(self, sigma: float = 0.03, p: float = 1.0):
        super().__init__(p)
        self.sigma = float(sigma)

    def apply(self, x, mask, generator):
        return x + self.sigma * _normal(x.shape, generator, x.device).to(x.dtype), mask


class Scaling(Augmentation):
    """Multiply each channel of each series by a factor ~ N(1, sigma^2)."""

    name = "scaling"

    def __init__(self, sigma: float = 0.1, p: float = 1.0):
        super().__init__(p)
        self.sigma = float(sigma)

    def apply(self, x, mask, generator):
        factor = 1 + self.sigma * _normal((x.size(0), 1, x.size(2)), generator, x.device)
        return x * factor.to(x.dtype), mask


class MagnitudeWarp(Augmentation):
    """Multiply by a smooth random curve around 1 (cubic through knots ~ N(1, sigma^2))."""

    name = "magnitude_warp"

    def __init__(self, sigma: float = 0.2, knots: int = 4, p: float = 1.0):
        super().__init__(p)
        self.sigma, self.knots = float(sigma), int(knots)

    def apply(self, x, mask, generator):
        curve = _smooth_curve(x.size(0), x.size(2), x.size(1), self.sigma, self.knots,
                              generator, x.device)
        return x * curve.to(x.dtype), mask


# ----------------------------------------------------------------------------- time axis


class TimeWarp(Augmentation):
    """Smoothly speed up and slow down time: a random positive speed curve (cubic through
    knots ~ N(1, sigma^2)) is integrated into a monotone map of [0, T-1] onto itself and
    the series is resampled along it. One warp per series, shared by its channels so
    simultaneous leads stay aligned."""

    name = "time_warp"

    def __init__(self, sigma: float = 0.2, knots: int = 4, p: float = 1.0):
        super().__init__(p)
        self.sigma, self.knots = float(sigma), int(knots)

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        speed = _smooth_curve(b, 1, t, self.sigma, self.knots, generator, x.device)[..., 0]
        speed = speed.clamp(min=0.1).float()
        cum = torch.cumsum(speed, dim=1)
        cum = cum - cum[:, :1]
        positions = cum / cum[:, -1:].clamp(min=1e-8) * (t - 1)
        return resample(x, positions), (None if mask is None else _resample_mask(mask, positions))


class Permutation(Augmentation):
    """Cut each series into 1..max_segments-1 pieces (random or equal cut points; 1 = no
    change, as Um et al.) and shuffle the pieces."""

    name = "permutation"

    def __init__(self, max_segments: int = 5, mode: str = "random", p: float = 1.0):
        super().__init__(p)
        if mode not in ("random", "equal"):
            raise ValueError(f"permutation: mode={mode!r} is not known; choose random or equal")
        if max_segments < 2:
            raise ValueError("permutation: max_segments must be >= 2")
        self.max_segments, self.mode = int(max_segments), mode

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        dev = x.device
        top = min(self.max_segments - 1, t)          # the most pieces a series can have
        n = _randint(1, self.max_segments, (b,), generator, dev).clamp(max=t).unsqueeze(1)
        cut = torch.arange(1, top, device=dev).view(1, -1)      # cut numbers 1..top-1
        if self.mode == "random":   # n - 1 distinct cut points: the first of a random order of 1..t-1
            cuts = _uniform((b, t - 1), generator, dev).argsort(dim=1)[:, :top - 1] + 1
        else:
            cuts = (cut.double() * t / n).round().long()
        cuts = torch.where(cut < n, cuts, t).sort(dim=1).values     # unused cuts past the end
        steps = torch.arange(t, device=dev).expand(b, t).contiguous()
        piece = torch.searchsorted(cuts, steps, right=True)          # piece of each step
        # a random order of each series' n pieces (unused pieces last)
        keys = _uniform((b, top), generator, dev).masked_fill(torch.arange(top, device=dev) >= n, 2.0)
        place = keys.argsort(dim=1).argsort(dim=1)
        idx = (place.gather(1, piece) * t + steps).argsort(dim=1)
        out = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.size(2)))
        return out, (None if mask is None else _resample_mask(mask, idx.to(torch.float32)))


def _out_length(out_len, t: int) -> int:
    if out_len is None:
        return t
    if isinstance(out_len, float) and out_len <= 1.0:
        return max(2, int(round(out_len * t)))
    return int(out_len)


class RandomCropResize(Augmentation):
    """Crop a random window covering a fraction ``scale`` (uniform in [lo, hi]) of the
    series and resample it to ``out_len`` steps (None: the input length; a float <= 1: that
    fraction of it; an int: that many). DINO's global views use scale (0.4, 1), local views
    (0.05, 0.4) at a smaller out_len."""

    name = "crop_resize"

    def __init__(self, scale=(0.5, 1.0), out_len=None, p: float = 1.0):
        super().__init__(p)
        lo, hi = float(scale[0]), float(scale[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_resize: scale={scale} must satisfy 0 < lo <= hi <= 1")
        self.scale, self.out_len = (lo, hi), out_len

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        n = _out_length(self.out_len, t)
        lo, hi = self.scale
        frac = lo + (hi - lo) * _uniform((b, 1), generator, x.device)
        length = (frac * (t - 1)).clamp(min=1.0)                 # span in steps
        start = _uniform((b, 1), generator, x.device) * (t - 1 - length)
        positions = start + torch.linspace(0, 1, n, device=x.device).view(1, -1) * length
        return resample(x, positions), (None if mask is None else _resample_mask(mask, positions))


class TimeShift(Augmentation):
    """Shift each series in time by up to ``max_shift`` (a fraction of T if < 1, else
    steps) either way; circular (roll) or zero-filled."""

    name = "time_shift"

    def __init__(self, max_shift: float = 0.1, circular: bool = True, p: float = 1.0):
        super().__init__(p)
        self.max_shift, self.circular = max_shift, bool(circular)

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        m = int(round(self.max_shift * t)) if self.max_shift < 1 else int(self.max_shift)
        m = min(m, t - 1)
        shift = _randint(-m, m + 1, (b, 1), generator, x.device)
        src = torch.arange(t, device=x.device).view(1, -1) - shift
        inside = (src >= 0) & (src < t)
        src = src % t
        out = torch.gather(x, 1, src.unsqueeze(-1).expand(-1, -1, x.size(2)))
        new_mask = None if mask is None else _resample_mask(mask, src.to(torch.float32))
        if not self.circular:
            out = out * inside.unsqueeze(-1).to(x.dtype)
            if new_mask is not None:
                new_mask = new_mask & (inside if new_mask.dim() == 2 else inside.unsqueeze(-1))
        return out, new_mask


class Masking(Augmentation):
    """Zero time steps (all channels): each step with probability ``ratio`` ("binomial", as
    TS2Vec's timestamp masking) or ``n_spans`` spans covering ``ratio`` of the series
    ("continuous"). Masked steps become unobserved in the returned mask."""

    name = "masking"

    def __init__(self, ratio: float = 0.5, mode: str = "binomial", n_spans: int = 5, p: float = 1.0):
        super().__init__(p)
        if mode not in ("binomial", "continuous"):
            raise ValueError(f"masking: mode={mode!r} is not known; choose binomial or continuous")
        self.ratio, self.mode, self.n_spans = float(ratio), mode, int(n_spans)

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        if self.mode == "binomial":
            hidden = _uniform((b, t), generator, x.device) < self.ratio
        else:
            span = max(1, int(round(self.ratio * t / self.n_spans)))
            starts = _randint(0, max(t - span, 0) + 1, (b, self.n_spans, 1), generator, x.device)
            steps = torch.arange(t, device=x.device).view(1, 1, -1)
            hidden = ((steps >= starts) & (steps < starts + span)).any(dim=1)
        out = x.masked_fill(hidden.unsqueeze(-1), 0.0)
        if mask is not None:
            mask = mask & (~hidden if mask.dim() == 2 else ~hidden.unsqueeze(-1))
        return out, mask


class NeighbourhoodSegment(Augmentation):
    """TNC-style neighbourhood view: a window of ``window`` (fraction of T or steps) whose
    centre is drawn from N(T/2, (eta * window)^2); two views of one series are therefore
    neighbouring segments of it. Output length = window (or ``out_len``, resampled)."""

    name = "neighbour_segment"

    def __init__(self, window: float = 0.5, eta: float = 0.5, out_len=None, p: float = 1.0):
        super().__init__(p)
        self.window, self.eta, self.out_len = window, float(eta), out_len

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        w = _out_length(float(self.window), t) if self.window <= 1 else int(self.window)
        w = min(w, t)
        centre = t / 2 + self.eta * w * _normal((b, 1), generator, x.device)
        start = (centre - w / 2).round().clamp(0, t - w)
        n = w if self.out_len is None else _out_length(self.out_len, w)
        positions = start + torch.linspace(0, w - 1, n, device=x.device).view(1, -1)
        return resample(x, positions), (None if mask is None else _resample_mask(mask, positions))


def neighbour_segments(x: torch.Tensor, window: int, n_neighbours: int = 4, eta: float = 3.0,
                       generator: torch.Generator | None = None):
    """TNC sampling (Tonekaboni et al. 2021) for x [B, T, C]: per series a random anchor
    window W_t of ``window`` steps, ``n_neighbours`` windows whose centres are drawn from
    N(t, (eta * window)^2) (the neighbourhood) and as many non-neighbours whose centres lie
    more than 2 * eta * window away when the series is long enough (else anywhere).

    Returns (anchor [B, W, C], neighbours [B, K, W, C], non_neighbours [B, K, W, C],
    anchor_starts [B])."""
    b, t, c = x.shape
    if not 1 <= window <= t:
        raise ValueError(f"neighbour_segments: window={window} must lie in [1, T={t}]")
    dev = x.device
    half = window / 2
    centre = half + _uniform((b,), generator, dev) * (t - window)
    starts_n = (centre.view(-1, 1) + eta * window * _normal((b, n_neighbours), generator, dev)
                - half).round().clamp(0, t - window)
    cand = half + _uniform((b, n_neighbours, 8), generator, dev) * (t - window)   # 8 tries each
    far = (cand - centre.view(-1, 1, 1)).abs() > 2 * eta * window
    first_far = torch.where(far.any(-1), far.float().argmax(-1), torch.zeros_like(far[..., 0], dtype=torch.long))
    centre_nn = torch.gather(cand, 2, first_far.unsqueeze(-1)).squeeze(-1)
    starts_nn = (centre_nn - half).round().clamp(0, t - window)
    starts_a = (centre - half).round().clamp(0, t - window)
    steps = torch.arange(window, device=dev)

    def take(starts: torch.Tensor) -> torch.Tensor:        # starts [B, K] -> [B, K, W, C]
        idx = (starts.long().unsqueeze(-1) + steps).view(b, -1)
        out = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, c))
        return out.view(b, starts.size(1), window, c)

    return take(starts_a.view(-1, 1))[:, 0], take(starts_n), take(starts_nn), starts_a.long()


# ----------------------------------------------------------------------------- frequency


def remove_frequency(spectrum: torch.Tensor, ratio: float = 0.1,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """TF-C: zero a random ``ratio`` of the entries of a spectrum (any shape, real or complex)."""
    keep = _uniform(spectrum.shape, generator, spectrum.device) >= ratio
    return spectrum * keep


def add_frequency(spectrum: torch.Tensor, ratio: float = 0.1, alpha: float = 0.5,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """TF-C: add to a random ``ratio`` of the entries of a spectrum [B, F, C] an amplitude
    uniform in [0, alpha * max |spectrum| of that series and channel); complex spectra get
    the amplitude with a random phase."""
    chosen = _uniform(spectrum.shape, generator, spectrum.device) < ratio
    peak = spectrum.abs().amax(dim=1, keepdim=True)
    amp = _uniform(spectrum.shape, generator, spectrum.device) * alpha * peak
    if spectrum.is_complex():
        phase = 2 * math.pi * _uniform(spectrum.shape, generator, spectrum.device)
        amp = torch.polar(amp.float(), phase.float()).to(spectrum.dtype)
    return spectrum + amp * chosen


class FrequencyRemove(Augmentation):
    """Zero a random ``ratio`` of the rFFT components of each series and channel (TF-C)."""

    name = "freq_remove"

    def __init__(self, ratio: float = 0.1, p: float = 1.0):
        super().__init__(p)
        self.ratio = float(ratio)

    def apply(self, x, mask, generator):
        spec = torch.fft.rfft(x.float(), dim=1)
        out = torch.fft.irfft(remove_frequency(spec, self.ratio, generator), n=x.size(1), dim=1)
        return out.to(x.dtype), mask


class FrequencyAdd(Augmentation):
    """Add random-amplitude components at a random ``ratio`` of the rFFT bins (TF-C)."""

    name = "freq_add"

    def __init__(self, ratio: float = 0.1, alpha: float = 0.5, p: float = 1.0):
        super().__init__(p)
        self.ratio, self.alpha = float(ratio), float(alpha)

    def apply(self, x, mask, generator):
        spec = torch.fft.rfft(x.float(), dim=1)
        spec = add_frequency(spec, self.ratio, self.alpha, generator)
        return torch.fft.irfft(spec, n=x.size(1), dim=1).to(x.dtype), mask


class FrequencyMix(Augmentation):
    """TimesURL's frequency mixing, real-valued variant: a random ``rate`` of the rFFT bins
    of each series (per channel) is replaced by the same bins of another series of the
    batch. (The official TimesURL code mixes the full complex FFT and returns the modulus
    of the inverse FFT; model=timesurl does that, models.ssl.timesurl.frequency_mix_official.)"""

    name = "freq_mix"

    def __init__(self, rate: float = 0.5, p: float = 1.0):
        super().__init__(p)
        self.rate = float(rate)

    def apply(self, x, mask, generator):
        b, t, _ = x.shape
        partner = x[_randperm(b, generator, x.device)]
        xf, pf = torch.fft.rfft(x.float(), dim=1), torch.fft.rfft(partner.float(), dim=1)
        chosen = _uniform(xf.shape, generator, x.device) < self.rate
        return torch.fft.irfft(torch.where(chosen, pf, xf), n=t, dim=1).to(x.dtype), mask


# ----------------------------------------------------------------------------- mixing samples


def _cut_window(t: int, lam: float, generator) -> tuple[int, int]:
    cut = int(round((1 - lam) * t))
    start = int(_randint(0, t - cut + 1, (1,), generator, "cpu")) if cut < t else 0
    return start, start + cut


def mixup_batch(x: torch.Tensor, y: torch.Tensor | None, alpha: float = 0.2,
                generator: torch.Generator | None = None):
    """Mixup (Zhang et al. 2018): x' = lam * x + (1 - lam) * x[perm], lam ~ Beta(alpha, alpha)
    once per batch. Returns (x_mixed, y, y[perm], lam); train with
    lam * loss(y) + (1 - lam) * loss(y[perm])."""
    if alpha <= 0:
        raise ValueError(f"mixup_batch: alpha={alpha} must be > 0 (0 means no mixup)")
    lam = _beta(alpha, generator)
    perm = _randperm(x.size(0), generator, x.device)
    mixed = lam * x + (1 - lam) * x[perm]
    return mixed, y, (None if y is None else y[perm]), lam


def cutmix_batch(x: torch.Tensor, y: torch.Tensor | None, alpha: float = 1.0,
                 generator: torch.Generator | None = None):
    """CutMix (Yun et al. 2019) in time: a window of round((1 - lam) * T) steps, lam ~
    Beta(alpha, alpha), is pasted from x[perm]; lam is corrected to the kept share.
    Returns (x_mixed, y, y[perm], lam)."""
    if alpha <= 0:
        raise ValueError(f"cutmix_batch: alpha={alpha} must be > 0")
    t = x.size(1)
    lam = _beta(alpha, generator)
    perm = _randperm(x.size(0), generator, x.device)
    a, b = _cut_window(t, lam, generator)
    mixed = x.clone()
    mixed[:, a:b] = x[perm, a:b]
    lam = 1 - (b - a) / t
    return mixed, y, (None if y is None else y[perm]), lam


def mix_targets(y_a: torch.Tensor, y_b: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    """Soft targets lam * onehot(y_a) + (1 - lam) * onehot(y_b), [B, num_classes]."""
    return lam * F.one_hot(y_a, num_classes).float() + (1 - lam) * F.one_hot(y_b, num_classes).float()


class Mixup(Augmentation):
    """Mixup as a view augmentation (no labels): each view is mixed with another series of
    the batch."""

    name = "mixup"

    def __init__(self, alpha: float = 0.2, p: float = 1.0):
        super().__init__(p)
        self.alpha = float(alpha)

    def apply(self, x, mask, generator):
        return mixup_batch(x, None, self.alpha, generator)[0], mask


class CutMix(Augmentation):
    """CutMix as a view augmentation (no labels)."""

    name = "cutmix"

    def __init__(self, alpha: float = 1.0, p: float = 1.0):
        super().__init__(p)
        self.alpha = float(alpha)

    def apply(self, x, mask, generator):
        return cutmix_batch(x, None, self.alpha, generator)[0], mask


# ----------------------------------------------------------------------------- from config

AUGMENTATIONS = {cls.name: cls for cls in (
    Identity, Jitter, Scaling, MagnitudeWarp, TimeWarp, Permutation, RandomCropResize, TimeShift,
    Masking, NeighbourhoodSegment, FrequencyRemove, FrequencyAdd, FrequencyMix, Mixup, CutMix)}


def _plain(spec: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
        if isinstance(spec, (DictConfig, ListConfig)):
            return OmegaConf.to_container(spec, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return spec


def build_augmentation(spec) -> Augmentation:
    """One augmentation from a name or a dict {"name": <name>, <argument>: value, ...}."""
    spec = _plain(spec)
    if isinstance(spec, Augmentation):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"an augmentation is a name or a dict with 'name'; got {spec!r}. "
                         f"Known names: {', '.join(sorted(AUGMENTATIONS))}")
    kwargs = dict(spec)
    name = kwargs.pop("name")
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{name}'; choose one of {', '.join(sorted(AUGMENTATIONS))}")
    try:
        return AUGMENTATIONS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"augmentation '{name}': {err}") from err


def build_augmentations(specs) -> Compose:
    """A Compose of the augmentations listed in ``specs`` (None or [] = identity)."""
    specs = _plain(specs)
    if specs is None:
        return Compose([])
    if isinstance(specs, (str, dict)):
        specs = [specs]
    return Compose([build_augmentation(s) for s in specs])


def build_views(spec, n_views: int) -> list[Compose]:
    """``n_views`` pipelines: ``spec`` is one list used for every view, or a list of
    ``n_views`` lists (one per view)."""
    spec = _plain(spec)
    if spec and isinstance(spec, list) and all(isinstance(s, list) for s in spec):
        if len(spec) != n_views:
            raise ValueError(f"{len(spec)} augmentation lists given for {n_views} views; give one "
                             "list for all views or exactly one list per view")
        return [build_augmentations(s) for s in spec]
    return [build_augmentations(spec) for _ in range(n_views)]
