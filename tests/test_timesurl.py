"""TimesURL: frequency mixing changes only the chosen frequency bins, segment masks, the
time-stamp split, aligned views, Universum hard negatives and the joint loss."""
import numpy as np
import pytest
import torch

from models.ssl.timesurl import (TimesURL, frequency_mix, frequency_mix_official, segment_mask,
                             time_segment_mask, time_split)
from utils.losses.timesurl import TimesURLLoss, dual_instance_loss, dual_temporal_loss, instance_universum, masked_mse, temporal_universum
from utils.losses.ts2vec import instance_contrastive_loss, temporal_contrastive_loss


def test_frequency_mix_replaces_exactly_the_chosen_bins():
    torch.manual_seed(0)
    x, partner = torch.randn(4, 64, 2, dtype=torch.float64), torch.randn(4, 64, 2, dtype=torch.float64)
    mixed, chosen = frequency_mix(x, 0.5, partner=partner, return_mask=True)
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    fm, fx, fp = (torch.fft.rfft(a, dim=1) for a in (mixed, x, partner))
    assert 0.3 < chosen.float().mean() < 0.7
    assert torch.allclose(fm[chosen], fp[chosen], atol=1e-9)
    assert torch.allclose(fm[~chosen], fx[~chosen], atol=1e-9)
    # odd length too, and the two extreme rates
    y = torch.randn(3, 51, 1, dtype=torch.float64)
    assert torch.allclose(frequency_mix(y, 0.0), y, atol=1e-9)
    assert torch.allclose(frequency_mix(y, 1.0, partner=y.flip(0)), y.flip(0), atol=1e-9)


def test_frequency_mix_partner_comes_from_the_same_batch():
    torch.manual_seed(1)
    x = torch.randn(5, 32, 1, dtype=torch.float64)
    mixed, chosen = frequency_mix(x, 0.5, return_mask=True)
    fm, fx = torch.fft.rfft(mixed, dim=1), torch.fft.rfft(x, dim=1)
    for i in range(5):
        bins = chosen[i]
        assert any(torch.allclose(fm[i][bins], fx[j][bins], atol=1e-9) for j in range(5))


def test_segment_mask_counts():
    torch.manual_seed(0)
    m = segment_mask(6, 200, 3, segment_num=3, ratio=0.05)
    per = m.sum(dim=1)                                   # B x C hidden steps
    assert m.shape == (6, 200, 3)
    assert (per >= 10).all() and (per <= 30).all()       # 3 segments of 10 steps, may overlap


def test_views_align_and_reconstruction_targets_are_the_input():
    torch.manual_seed(0)
    model = TimesURL(1, output_dims=16, hidden_dims=8, depth=2, freq_mix_rate=0.0,
                     time_split=False)
    t = 60
    x = torch.arange(t, dtype=torch.float32).view(1, t, 1).repeat(4, 1, 1)
    out = model({"x": x})
    assert out["z1"].shape == out["z2"].shape and out["z1"].shape[-1] == 16
    assert out["recon1"].shape == out["target1"].shape == out["rmask1"].shape
    # without mixing both views hold the same time steps (consecutive integers)
    assert torch.allclose(out["target1"], out["target2"], atol=1e-4)
    steps = out["target1"][..., 0]
    assert torch.allclose(steps[:, 1:] - steps[:, :-1], torch.ones(1))
    # the masks of both views are the same full-series mask, cropped
    assert torch.equal(out["rmask1"], out["rmask2"])


def test_view_and_masked_view_in_one_batch_equal_separate_encoder_passes():
    """The step encodes each view with its masked copy as one batch; encoded one at a time
    (same random draws: the encoder without dropout draws none) the outputs are the same."""
    class OneAtATime(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            return torch.cat([self.encoder(part) for part in x.chunk(2)])

    torch.manual_seed(0)
    model = TimesURL(2, output_dims=16, hidden_dims=8, depth=3, repr_dropout=0.0)
    x = torch.randn(5, 50, 2)
    torch.manual_seed(1)
    batched = model({"x": x})["pairs"]
    model.encoder = OneAtATime(model.encoder)
    torch.manual_seed(1)
    separate = model({"x": x})["pairs"]
    for a, b in zip(batched, separate):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_encoder_sees_no_timestamp_mask_and_the_view_mixing_changes_view_two():
    torch.manual_seed(0)
    model = TimesURL(2, output_dims=8, hidden_dims=4, depth=1)
    assert model.encoder.mask_mode == "all_true"
    out = model({"x": torch.randn(6, 40, 2)})
    assert len(out["pairs"]) == 2
    for pair in out["pairs"]:
        assert not torch.allclose(pair["target1"], pair["target2"])
        assert (pair["target2"] >= 0).all()          # official mixing returns |ifft|


def test_universums_mix_with_a_permuted_step_or_instance():
    torch.manual_seed(0)
    z = torch.randn(3, 7, 4, dtype=torch.float64)
    lam = 0.2
    rest = (temporal_universum(z, lam) - lam * z) / (1 - lam)
    partner = [[s for s in range(7) if torch.allclose(rest[0, t], z[0, s])] for t in range(7)]
    assert all(len(p) == 1 for p in partner)
    perm = [p[0] for p in partner]
    assert sorted(perm) == list(range(7))                # a permutation of the steps ...
    for b in range(3):                                   # ... shared by the batch
        assert all(torch.allclose(rest[b, t], z[b, perm[t]]) for t in range(7))
    rest = (instance_universum(z, lam) - lam * z) / (1 - lam)
    perm = [[j for j in range(3) if torch.allclose(rest[b], z[j])][0] for b in range(3)]
    assert sorted(perm) == [0, 1, 2]


def test_official_frequency_mix_swaps_complex_coefficients_and_returns_the_modulus():
    torch.manual_seed(0)
    x, partner = torch.randn(4, 64, 2, dtype=torch.float64), torch.randn(4, 64, 2, dtype=torch.float64)
    mixed, chosen = frequency_mix_official(x, 0.5, partner=partner, return_mask=True)
    assert mixed.shape == x.shape and (mixed >= 0).all()
    assert 0.3 < chosen.float().mean() < 0.7
    # three positions per (series, channel) are never chosen
    assert ((~chosen).sum(dim=1) >= 3).all()
    xf, pf = torch.fft.fft(x, dim=1), torch.fft.fft(partner, dim=1)
    want = torch.fft.ifft(torch.where(chosen, pf, xf), dim=1).abs()
    assert torch.allclose(mixed, want)
    # no mixing: the modulus of the series itself
    assert torch.allclose(frequency_mix_official(x, 0.0), x.abs(), atol=1e-9)


def test_time_split_gives_two_complementary_subsets_in_time_order():
    torch.manual_seed(0)
    b, t = 5, 50
    x = torch.arange(1, t + 1, dtype=torch.float32).view(1, t, 1).repeat(b, 1, 2)
    (v1, t1, ok1), (v2, t2, ok2) = time_split(x)
    for i in range(b):
        a, c = v1[i, ok1[i], 0], v2[i, ok2[i], 0]
        assert 0.3 * t - 1 <= len(a) <= 0.7 * t
        assert len(a) + len(c) == t
        assert sorted(torch.cat([a, c]).tolist()) == list(range(1, t + 1))
        assert (a[1:] > a[:-1]).all() and (c[1:] > c[:-1]).all()
        assert torch.equal(t1[i, ok1[i]] + 1, a)           # times are the original steps
        assert (v1[i, ~ok1[i]] == 0).all() and (v2[i, ~ok2[i]] == 0).all()
        assert ok1[i, :len(a)].all() and not ok1[i, len(a):].any()


def test_time_segment_mask_hides_observed_intervals():
    torch.manual_seed(0)
    t = 200
    times = torch.arange(t, dtype=torch.float32).expand(6, t)
    observed = torch.ones(6, t, 3, dtype=torch.bool)
    observed[:, 150:] = False                             # padding
    hidden = time_segment_mask(times, observed, segment_num=3, ratio=0.05)
    assert not hidden[:, 150:].any()
    per = hidden.sum(dim=1)                               # span 149 * 0.05 = 7.45 -> 8 steps
    assert ((per == 0) | ((per >= 22) & (per <= 24))).all() and (per > 0).float().mean() > 0.8


def sequential_segment_mask(times, observed, segment_num, ratio, rng):
    """The official sampling written per (series, channel), draw after draw."""
    b, t, c = observed.shape
    hidden = np.zeros((b, t, c), dtype=bool)
    for i in range(b):
        for ch in range(c):
            pos = np.flatnonzero(observed[i, :, ch])
            tp = times[i, pos].astype(np.float64)
            span = (tp[-1] - tp[0]) * ratio
            available = tp < tp[-1] - span
            if not available.any():
                continue
            k, chosen = rng.choice(np.flatnonzero(available)), np.zeros(len(pos), dtype=bool)
            for _ in range(segment_num):
                seg = (tp >= tp[k]) & (tp <= tp[k] + span) & (np.arange(len(pos)) >= k)
                chosen |= seg
                available &= ~seg & ~((tp > tp[k] - span) & (tp < tp[k]))
                if not available.any():      # no start left for a further draw: nothing hidden
                    chosen[:] = False
                    break
                k = rng.choice(np.flatnonzero(available))
            hidden[i, pos[chosen], ch] = True
    return hidden


def test_time_segment_mask_draws_as_the_sequential_sampling_does():
    torch.manual_seed(0)
    x = torch.randn(64, 120, 2)
    (_, times, valid), _ = time_split(x)              # irregular time stamps, padded ends
    observed = valid.unsqueeze(-1) & (torch.rand(64, 120, 2) > 0.2)
    observed[:, :3] = valid[:, :3].unsqueeze(-1)
    # ratio 0.2: three segments often leave no start for a further draw (then nothing is hidden)
    ours = torch.stack([time_segment_mask(times, observed, 3, 0.2) for _ in range(60)]).numpy()
    rng = np.random.default_rng(0)
    theirs = np.stack([sequential_segment_mask(times.numpy(), observed.numpy(), 3, 0.2, rng)
                       for _ in range(60)])
    assert not (ours & ~observed.numpy()).any()       # only observed entries are hidden
    # the same distribution: share of channels left whole, hidden entries, hiding rate by position
    empty = lambda h: (h.sum(axis=2) == 0).mean()
    assert 0.3 < empty(theirs) < 0.9 and abs(empty(ours) - empty(theirs)) < 0.03
    assert ours.mean() == pytest.approx(theirs.mean(), rel=0.05)
    assert np.abs(ours.mean(axis=(0, 1, 3)) - theirs.mean(axis=(0, 1, 3))).max() < 0.03
    for i, ch in [(0, 0), (5, 1), (17, 0)]:    # at most 3 runs of hidden observed entries
        pos = np.flatnonzero(observed[i, :, ch].numpy())
        for h in ours[:, i, pos, ch].astype(int):
            assert (np.diff(np.r_[0, h]) == 1).sum() <= 3


def test_loss_sums_over_the_two_time_stamp_subsets():
    torch.manual_seed(0)
    model = TimesURL(1, output_dims=8, hidden_dims=4, depth=1)
    out = model({"x": torch.randn(6, 40, 1)})
    loss_fn = TimesURLLoss()
    torch.manual_seed(1)
    total = loss_fn(out)
    torch.manual_seed(1)
    parts = [loss_fn(p) for p in out["pairs"]]
    assert total["loss"].item() == pytest.approx(sum(p["loss"].item() for p in parts), rel=1e-5)


def test_universum_negatives_raise_the_contrastive_loss():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 6, 8), torch.randn(4, 6, 8)
    # extra negatives only enlarge the softmax denominators
    assert dual_instance_loss(z1, z2) > instance_contrastive_loss(z1, z2)
    assert dual_temporal_loss(z1, z2) > temporal_contrastive_loss(z1, z2)
    with pytest.raises(ValueError, match="universum_lambda"):
        TimesURLLoss(universum_lambda=0.8)


def test_joint_loss_parts_and_weights():
    torch.manual_seed(0)
    target = torch.randn(2, 5, 3)
    recon = torch.randn(2, 5, 3)
    mask = torch.zeros(2, 5, 3, dtype=torch.bool)
    mask[0, 1:3, 0] = True
    want = ((target - recon)[mask] ** 2).mean()
    assert masked_mse(target, recon, mask).item() == pytest.approx(want.item())
    out = {"z1": torch.randn(2, 5, 4), "z2": torch.randn(2, 5, 4), "recon1": recon,
           "recon2": recon, "target1": target, "target2": target, "rmask1": mask, "rmask2": mask}
    loss = TimesURLLoss(contrastive_weight=0.01, recon_weight=1.0)(out, {})
    assert set(loss) == {"loss", "contrastive", "recon"}
    assert loss["recon"].item() == pytest.approx(want.item())
    assert loss["loss"].item() == pytest.approx(0.01 * loss["contrastive"].item() + want.item(),
                                                rel=1e-5)


def test_timesurl_loss_falls_on_ecg200(data_dir, cache_dir):
    from tests.test_ts2vec import load_ucr
    torch.manual_seed(0)
    x = load_ucr("ECG200", data_dir, cache_dir).splits["train"].arrays["x"].float()
    model = TimesURL(1, output_dims=32, hidden_dims=16, depth=3)
    loss_fn = TimesURLLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(60):
        batch = {"x": x[torch.randint(0, len(x), (16,))]}
        loss = loss_fn(model(batch), batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step(step)
        losses.append(loss.item())
    assert np.mean(losses[-15:]) < 0.7 * np.mean(losses[:15])     # batches of 16: noisy steps
    assert model.encode(x[:10]).shape == (10, 32)
