"""utils/augmentations.py: every augmentation is seeded (same generator state, same output),
keeps the shapes it must, and changes the series the way its definition says."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from utils.augmentations import (AUGMENTATIONS, FrequencyAdd, FrequencyMix, FrequencyRemove,
                                 Jitter, MagnitudeWarp, Masking, NeighbourhoodSegment, Permutation,
                                 RandomCropResize, Scaling, TimeShift, TimeWarp, build_augmentations,
                                 build_views, cutmix_batch, mixup_batch, neighbour_segments)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp(b: int = 4, t: int = 64, c: int = 2) -> torch.Tensor:
    """x[b, t, c] = t (+ 1000 c): values name their time step."""
    return (torch.arange(t, dtype=torch.float32).view(1, t, 1) + 1000 * torch.arange(c).view(1, 1, c)
            ).repeat(b, 1, 1)


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_seeded_reproducible_and_shape(name):
    x = torch.randn(6, 80, 3, generator=gen(1))
    mask = torch.ones(6, 80, dtype=torch.bool)
    aug = AUGMENTATIONS[name]()
    a, ma = aug(x, mask, gen(7))
    b = aug(x, None, gen(7))
    assert torch.equal(a, b)                       # same generator state -> same output
    assert torch.isfinite(a).all()
    assert a.shape[0] == 6 and a.shape[2] == 3 and ma.shape == a.shape[:2]
    if name != "neighbour_segment":               # every other one keeps the length by default
        assert a.shape == x.shape
    if name != "identity":
        assert not torch.equal(aug(x, None, gen(8)), a)   # another seed, another draw
    torch.manual_seed(3)                          # no generator: torch's global RNG (seed=)
    c = aug(x)
    torch.manual_seed(3)
    assert torch.equal(aug(x), c)


def test_jitter_and_scaling_statistics():
    x = torch.ones(64, 500, 2)
    noise = Jitter(sigma=0.05)(x, generator=gen()) - x
    assert abs(noise.mean().item()) < 0.005 and noise.std().item() == pytest.approx(0.05, rel=0.05)
    y = Scaling(sigma=0.1)(torch.randn(64, 50, 2, generator=gen(2)).abs() + 1, generator=gen())
    x2 = torch.randn(64, 50, 2, generator=gen(2)).abs() + 1
    ratio = y / x2
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)   # one factor per channel
    assert ratio[:, 0].std().item() == pytest.approx(0.1, rel=0.3)


def test_magnitude_warp_is_a_smooth_positive_curve():
    x = torch.ones(8, 200, 1)
    curve = MagnitudeWarp(sigma=0.2, knots=4)(x, generator=gen())[..., 0]
    assert (curve > 0).all() and (curve - 1).abs().max() > 0.02
    assert (curve[:, 1:] - curve[:, :-1]).abs().max() < 0.05     # smooth: small step-to-step change


def test_time_warp_is_monotone_and_keeps_the_ends():
    x = ramp()
    out = TimeWarp(sigma=0.3)(x, generator=gen())
    assert torch.allclose(out[:, 0], x[:, 0]) and torch.allclose(out[:, -1], x[:, -1], atol=1e-3)
    assert (out[:, 1:, 0] - out[:, :-1, 0] >= -1e-4).all()
    assert not torch.allclose(out, x)
    assert torch.allclose(out[..., 1] - out[..., 0], torch.full_like(out[..., 0], 1000.0))  # channels aligned


def test_permutation_reorders_contiguous_pieces():
    x = ramp(b=16, t=50, c=1)
    out = Permutation(max_segments=5)(x, generator=gen())[..., 0]
    assert torch.equal(out.sort(dim=1).values, x[..., 0])        # a permutation of the steps
    jumps = ((out[:, 1:] - out[:, :-1]) != 1).sum(dim=1)          # piece boundaries
    assert jumps.max() <= 3 and jumps.max() >= 1                  # at most 4 pieces (1..max-1)


def pieces(row: torch.Tensor) -> list[list[int]]:
    """The runs of consecutive steps a permuted ramp row is made of, in output order."""
    out = [[int(row[0])]]
    for v in row[1:].tolist():
        if v == out[-1][-1] + 1:
            out[-1].append(int(v))
        else:
            out.append([int(v)])
    return out


def test_permutation_draws_piece_counts_uniformly_and_equal_cuts_as_linspace():
    x = ramp(b=4000, t=30, c=1)
    out = Permutation(max_segments=5)(x, generator=gen())[..., 0]
    boundaries = ((out[:, 1:] - out[:, :-1]) != 1).sum(dim=1)
    # 1..4 pieces equally likely; 3 boundaries only when 4 pieces are shuffled with no piece
    # right before its successor: 11 of the 24 orders
    assert boundaries.bincount(minlength=4)[3] / 4000 == pytest.approx(0.25 * 11 / 24, abs=0.02)
    equal = Permutation(max_segments=5, mode="equal")(x[:500], generator=gen(1))[..., 0]
    cuts = {n: {0, *torch.linspace(0, 30, n + 1)[1:-1].round().long().tolist()} for n in range(1, 5)}
    for row in equal:          # pieces start at the cuts of one piece count (kept orders merge)
        starts = {p[0] for p in pieces(row)}
        assert any(starts <= cuts[n] for n in cuts)
    assert max(len(pieces(row)) for row in equal) == 4


def test_crop_resize_takes_one_window_resampled():
    x = ramp(b=8, t=100, c=1)
    out = RandomCropResize(scale=(0.4, 0.6))(x, generator=gen())[..., 0]
    span = out[:, -1] - out[:, 0]
    assert out.shape == (8, 100)
    assert ((span >= 0.4 * 99 - 1e-3) & (span <= 0.6 * 99 + 1e-3)).all()
    steps = out[:, 1:] - out[:, :-1]
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-4)   # linear = resampled window
    local = RandomCropResize(scale=(0.05, 0.4), out_len=0.43)(x, generator=gen())
    assert local.shape == (8, 43, 1)


def test_time_shift_moves_data_and_mask_together():
    x = ramp(b=6, t=40, c=1)
    mask = torch.zeros(6, 40, dtype=torch.bool)
    mask[:, 0] = True                                  # marks step 0
    out, m = TimeShift(max_shift=0.25)(x, mask, gen())
    assert torch.equal(out[..., 0].sort(dim=1).values, x[..., 0])   # circular: same values
    shifted_to = m.float().argmax(dim=1)
    assert torch.equal(out[torch.arange(6), shifted_to, 0], torch.zeros(6))
    assert (torch.minimum(shifted_to, 40 - shifted_to) <= 10).all()
    zero_fill = TimeShift(max_shift=10, circular=False)(x, generator=gen())
    assert (zero_fill == 0).sum() >= 6                                 # step 0 (value 0) + fill


def test_masking_hides_the_ratio_and_updates_the_mask():
    x = torch.randn(32, 200, 2, generator=gen()) + 5
    out, m = Masking(ratio=0.3)(x, torch.ones(32, 200, dtype=torch.bool), gen())
    hidden = (out == 0).all(dim=-1)
    assert hidden.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert torch.equal(~m, hidden)
    spans = Masking(ratio=0.2, mode="continuous", n_spans=2)(x, generator=gen())
    assert 0 < (spans == 0).all(-1).float().mean().item() <= 0.2 + 1e-6


def test_neighbourhood_segments_are_windows_of_the_series():
    x = ramp(b=5, t=1000, c=1)
    anchor, nb, far, start = neighbour_segments(x, window=50, n_neighbours=4, eta=1.0, generator=gen())
    assert anchor.shape == (5, 50, 1) and nb.shape == (5, 4, 50, 1) and far.shape == (5, 4, 50, 1)
    assert torch.equal(anchor[:, 0, 0], start.float())
    steps = torch.arange(50, dtype=torch.float32)
    assert torch.equal(nb[..., 0] - nb[..., :1, 0], steps.expand(5, 4, 50))   # contiguous windows
    d_near = (nb[:, :, 0, 0] - start.view(-1, 1)).abs()
    d_far = (far[:, :, 0, 0] - start.view(-1, 1)).abs()
    assert d_near.float().mean() < d_far.float().mean()
    seg = NeighbourhoodSegment(window=0.5, eta=0.1)(x, generator=gen())
    assert seg.shape == (5, 500, 1) and (seg[:, 0, 0] - 250).abs().max() <= 3 * 0.1 * 500


def test_frequency_remove_and_add_touch_the_ratio_of_bins():
    x = torch.randn(16, 256, 1, generator=gen())
    spec = torch.fft.rfft(x, dim=1)
    removed = torch.fft.rfft(FrequencyRemove(ratio=0.2)(x, generator=gen()), dim=1)
    zeroed = (removed.abs() < 1e-4) & (spec.abs() > 1e-3)
    assert zeroed.float().mean().item() == pytest.approx(0.2, abs=0.04)
    kept = ~zeroed
    assert torch.allclose(removed[kept], spec[kept], atol=1e-3)
    added = torch.fft.rfft(FrequencyAdd(ratio=0.1, alpha=0.5)(x, generator=gen()), dim=1)
    changed = (added - spec).abs() > 1e-3
    assert changed.float().mean().item() == pytest.approx(0.1, abs=0.04)
    assert ((added - spec).abs() <= 0.5 * spec.abs().amax(dim=1, keepdim=True) + 1e-3).all()


def test_frequency_mix_takes_each_bin_from_the_batch():
    x = torch.randn(6, 64, 1, generator=gen())
    spec = torch.fft.rfft(x, dim=1)[..., 0]                       # B x F
    out = torch.fft.rfft(FrequencyMix(rate=0.5)(x, generator=gen()), dim=1)[..., 0]
    own = (out - spec).abs() < 1e-3
    any_series = ((out.unsqueeze(1) - spec.unsqueeze(0)).abs() < 1e-3).any(dim=1)
    assert any_series.all()                                       # every bin is someone's bin
    assert 0.2 < (~own).float().mean().item() < 0.7


def test_mixup_and_cutmix_batches():
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1).repeat(1, 20, 2)   # series i == i
    y = torch.arange(8)
    mixed, ya, yb, lam = mixup_batch(x, y, alpha=0.4, generator=gen())
    assert torch.equal(ya, y) and 0 <= lam <= 1
    assert torch.allclose(mixed[:, 0, 0], lam * ya.float() + (1 - lam) * yb.float())
    mixed, ya, yb, lam = cutmix_batch(x, y, alpha=1.0, generator=gen(3))
    from_partner = (mixed[..., 0] == yb.view(-1, 1).float()) & (yb != ya).view(-1, 1)
    differs = yb != ya
    share = from_partner[differs].float().mean(dim=1)
    assert torch.allclose(share, torch.full_like(share, 1 - lam))
    with pytest.raises(ValueError, match="alpha"):
        mixup_batch(x, y, alpha=0.0)


def test_build_from_config_and_probability():
    spec = OmegaConf.create([{"name": "jitter", "sigma": 0.1}, {"name": "scaling", "p": 0.0}, "time_shift"])
    pipe = build_augmentations(spec)
    assert [type(t).__name__ for t in pipe.transforms] == ["Jitter", "Scaling", "TimeShift"]
    x = torch.randn(4, 30, 1)
    assert torch.equal(pipe(x, generator=gen()), pipe(x, generator=gen()))
    with pytest.raises(ValueError, match="choose one of"):
        build_augmentations([{"name": "rotate"}])
    with pytest.raises(ValueError, match="jitter"):
        build_augmentations([{"name": "jitter", "sigmaa": 1}])
    half = Jitter(sigma=1.0, p=0.5)(torch.zeros(400, 10, 1), generator=gen())
    touched = (half != 0).any(dim=1)[:, 0].float().mean().item()
    assert touched == pytest.approx(0.5, abs=0.08)                 # p drawn per series
    views = build_views([[{"name": "jitter"}], [{"name": "scaling"}]], 2)
    assert isinstance(views[1].transforms[0], Scaling)
    with pytest.raises(ValueError, match="one list per view"):
        build_views([[{"name": "jitter"}]], 2)
    with pytest.raises(ValueError, match="channels last"):
        Jitter()(torch.zeros(10, 3))
