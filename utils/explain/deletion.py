"""Faithfulness by deletion (Petsiuk et al. 2018, RISE): remove the most salient time steps
first, in steps of 10 % of the series, and follow the target class's score. A map that points
at what the model uses makes the score fall fast, so a lower area under the curve (AUC) is
better; a random order of the time steps is the baseline to beat.

"Remove" replaces all channels of a time step by a baseline: ``interpolate`` (the default:
the straight line between the nearest kept steps, so a removed step carries no information
of its own yet no step-shaped edge is drawn into the trace), ``zero`` (the mean of
z-normalised data) or ``mean`` (each sample's own channel means). A constant baseline turns
scattered single-step removals into spikes the classifier never saw in training; a random
order scatters its removals most, so there the curve measures the model's reaction to spikes
as much as the order (on MIT-BIH V beats the random order then ties with every map; the
class-dependent perturbation effects of Baer et al. 2025). With all steps removed every
order leaves the same input (zeros for ``interpolate``), so a sample's curves end together.
The score is the softmax probability of the target class (``prob``, in [0, 1] as in RISE)
or its logit (``logit``). The AUC uses the trapezoid rule over the removed fraction 0 .. 1.

``segment_len`` > 1 removes contiguous segments of that many steps instead of single steps
(segments ranked by their mean saliency; the random baseline then shuffles segments): the
point-wise vs sub-sequence perturbations of Schlegel et al. 2019 ("Towards a rigorous
evaluation of XAI methods on time series"), another way to keep a constant baseline from
favouring the random order (segments compare like with like).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .common import forward_logits, target_scores

BASELINES = ("interpolate", "zero", "mean")
SCORES = ("prob", "logit")


def _expand_segments(seg_order: torch.Tensor, segment_len: int, length: int) -> torch.Tensor:
    """Order of segments [B, S] -> order of their time steps [B, T] (last segment may be short)."""
    steps = (seg_order[..., None] * segment_len + torch.arange(segment_len)).flatten(1)
    return steps[steps < length].view(seg_order.shape[0], length)


def deletion_order(saliency: torch.Tensor, generator: torch.Generator | None = None,
                   segment_len: int = 1) -> torch.Tensor:
    """Time indices [B, T] from most to least salient. Ties (e.g. the zeros a ReLU leaves)
    are broken at random, so a flat stretch of the map does not mean 'left to right'.
    With ``segment_len`` > 1, whole segments are ranked by their mean saliency."""
    b, t = saliency.shape
    if segment_len > 1:
        seg = torch.arange(t) // segment_len
        n_seg = int(seg[-1]) + 1
        sums = torch.zeros(b, n_seg, dtype=torch.float64).index_add_(1, seg, saliency.detach().cpu().double())
        means = sums / torch.bincount(seg, minlength=n_seg)
        return _expand_segments(deletion_order(means, generator), segment_len, t)
    shuffle = torch.stack([torch.randperm(t, generator=generator) for _ in range(b)])
    shuffled = saliency.detach().cpu().gather(1, shuffle)
    ranks = torch.argsort(shuffled, dim=1, descending=True, stable=True)
    return shuffle.gather(1, ranks)


def random_order(batch: int, length: int, generator: torch.Generator | None = None,
                 segment_len: int = 1) -> torch.Tensor:
    """A random deletion order [B, T] (of single steps, or of whole segments)."""
    n_seg = -(-length // segment_len)
    seg_order = torch.stack([torch.randperm(n_seg, generator=generator) for _ in range(batch)])
    return _expand_segments(seg_order, segment_len, length) if segment_len > 1 else seg_order


def _interpolate_removed(x: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """Removed steps [B, T] of x [B, T, C] replaced by the straight line between the nearest
    kept steps on either side (the nearest kept value at the ends, zero when none is kept)."""
    b, t, c = x.shape
    steps = torch.arange(t, device=x.device).expand(b, t)
    kept = ~removed
    prev = torch.where(kept, steps, -1).cummax(dim=1).values                 # last kept <= i
    nxt = torch.where(kept, steps, t).flip(1).cummin(dim=1).values.flip(1)   # first kept >= i
    x_prev = x.gather(1, prev.clamp(min=0)[..., None].expand(b, t, c))
    x_next = x.gather(1, nxt.clamp(max=t - 1)[..., None].expand(b, t, c))
    weight = ((steps - prev) / (nxt - prev).clamp(min=1)).to(x.dtype)[..., None]
    line = x_prev + (x_next - x_prev) * weight
    has_prev, has_next = (prev >= 0)[..., None], (nxt < t)[..., None]
    filled = torch.where(has_prev & has_next, line,
                         torch.where(has_prev, x_prev, torch.where(has_next, x_next, 0.0)))
    return torch.where(removed[..., None], filled, x)


def remove_steps(x: torch.Tensor, removed: torch.Tensor, baseline: str) -> torch.Tensor:
    """x [B, T, C] with the time steps where ``removed`` [B, T] is true set to the baseline."""
    if baseline == "interpolate":
        return _interpolate_removed(x, removed)
    if baseline == "zero":
        fill = torch.zeros_like(x)
    elif baseline == "mean":
        fill = x.mean(dim=1, keepdim=True).expand_as(x)
    else:
        raise ValueError(f"unknown deletion baseline '{baseline}' (task.deletion.baseline); "
                         f"choose one of {BASELINES}")
    return torch.where(removed[..., None], fill, x)


@torch.no_grad()
def deletion_curve(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                   order: torch.Tensor, steps: int = 10, baseline: str = "interpolate",
                   score: str = "prob", forward_kwargs: Mapping[str, Any] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the target class as the first ``round(k / steps * T)`` time steps of
    ``order`` [B, T] are set to the baseline, k = 0 .. steps.

    Returns (fractions [steps + 1], scores [B, steps + 1])."""
    if score not in SCORES:
        raise ValueError(f"unknown deletion score '{score}' (task.deletion.score); "
                         f"choose one of {SCORES}")
    b, t = x.shape[:2]
    if order.shape != (b, t):
        raise ValueError(f"deletion order must be [batch, time] = {(b, t)}, "
                         f"got {tuple(order.shape)}")
    order = order.to(x.device)
    # rank[b, i] = position of time step i in the deletion order
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(t, device=x.device)
                                            .expand(b, t).contiguous())
    fractions = np.linspace(0.0, 1.0, steps + 1)
    scores = []
    for frac in fractions:
        n_removed = int(round(frac * t))
        removed = rank < n_removed                             # [B, T]
        logits = forward_logits(model, remove_steps(x, removed, baseline), forward_kwargs)
        s = target_scores(logits.softmax(-1) if score == "prob" else logits, target)
        scores.append(s.float().cpu().numpy())
    return fractions, np.stack(scores, axis=1)


def curve_auc(fractions: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Area under each deletion curve by the trapezoid rule: [B, steps + 1] -> [B]."""
    widths = np.diff(fractions)
    return ((scores[..., 1:] + scores[..., :-1]) * 0.5 * widths).sum(axis=-1)
