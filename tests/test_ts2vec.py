"""TS2Vec: encoder shapes and masking, crops, the hierarchical loss against a direct
computation, encoding (pooling, causal sliding windows), weight averaging, and the loss
falling on real data."""
import math

import numpy as np
import pytest
import torch

from layers.dilated_conv import SamePadConv, TSEncoder, live_taps
from data_provider.pretraining import split_long_series
from models.ssl.ts2vec import TS2Vec, random_overlapping_crops, take_per_row
from utils.losses.ts2vec import HierarchicalContrastiveLoss, hierarchical_contrastive_loss


def tiny_encoder(c=3, **kw):
    return TSEncoder(c, output_dims=16, hidden_dims=8, depth=3, **kw)


def test_same_pad_conv_keeps_length_for_even_and_odd_fields():
    x = torch.randn(2, 4, 13)
    for k, d in [(3, 1), (2, 1), (3, 4), (4, 2)]:
        assert SamePadConv(4, 5, k, d)(x).shape == (2, 5, 13)


def test_live_taps_are_those_that_read_the_series():
    assert live_taps(3, 1, 1, 5) == (0, 2)            # every tap reads data
    assert live_taps(3, 64, 64, 60) == (1, 1)          # +-64 lands in the padding of 60 steps
    assert live_taps(3, 64, 64, 65) == (0, 2)
    assert live_taps(5, 64, 128, 96) == (1, 3)         # the outer pair +-128 only reads padding
    assert live_taps(2, 3, 2, 1) is None               # offsets -2 and +1 of a 1-step series


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_same_pad_conv_skipping_dead_taps_equals_the_full_convolution(k):
    """Outputs and gradients (input, weight, bias) against nn.Conv1d over all taps, for
    dilations that leave all, some, one or no taps reading a series of each length."""
    torch.manual_seed(k)
    for d in (1, 3, 64, 1024):
        for t in (1, 2, 13, 64, 96, 300):
            conv = SamePadConv(3, 4, k, d)
            x = torch.randn(2, 3, t, requires_grad=True)
            full = conv.conv(x)
            full = full[..., :-conv.trim] if conv.trim else full
            out = conv(x)
            assert out.shape == full.shape == (2, 4, t)
            torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-6)
            grad = torch.randn_like(out)
            wrt = (x, conv.conv.weight, conv.conv.bias)
            for a, b in zip(torch.autograd.grad(out, wrt, grad), torch.autograd.grad(full, wrt, grad)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_encoder_shapes_and_default_architecture():
    enc = TSEncoder(3)   # paper defaults
    assert len(enc.feature_extractor.net) == 11            # 10 hidden blocks + output block
    assert enc.input_fc.out_features == 64 and enc.output_dims == 320
    dilations = [b.conv1.conv.dilation[0] for b in enc.feature_extractor.net]
    assert dilations == [2 ** i for i in range(11)]
    enc.eval()
    assert enc(torch.randn(2, 37, 3)).shape == (2, 37, 320)
    with pytest.raises(ValueError, match="channels last"):
        enc(torch.randn(2, 3, 37))


def test_eval_keeps_every_step_and_is_deterministic():
    torch.manual_seed(0)
    enc = tiny_encoder().eval()
    x = torch.randn(2, 20, 3)
    assert torch.equal(enc(x), enc(x))
    assert torch.equal(enc(x), enc(x, "all_true"))


def test_binomial_mask_hides_about_half_of_the_steps_in_training():
    torch.manual_seed(0)
    enc = tiny_encoder().train()
    seen = {}
    enc.feature_extractor.register_forward_hook(lambda m, inp, out: seen.update(h=inp[0]))
    enc(torch.randn(8, 500, 3))
    hidden_zero = (seen["h"] == 0).all(dim=1)               # B x T: step masked
    assert 0.45 < hidden_zero.float().mean().item() < 0.55


def test_masked_and_missing_steps_do_not_reach_the_encoder():
    torch.manual_seed(0)
    enc = tiny_encoder().eval()
    x = torch.randn(2, 30, 3)
    keep = torch.ones(2, 30, dtype=torch.bool)
    keep[:, 10:15] = False
    y = x.clone()
    y[:, 10:15] = 100.0                                     # changed only where masked
    assert torch.allclose(enc(x, keep), enc(y, keep))
    z = x.clone()
    z[:, 10:15, 1] = float("nan")                            # a missing value masks its step
    assert torch.allclose(enc(z), enc(x, keep))


def test_crops_overlap_on_the_same_time_steps():
    torch.manual_seed(0)
    t = 50
    x = torch.arange(t).float().view(1, t, 1).repeat(6, 1, 1)
    for _ in range(20):
        s1, l1, s2, l2, overlap = random_overlapping_crops(t, 6)
        v1, v2 = take_per_row(x, s1, l1), take_per_row(x, s2, l2)
        assert overlap >= 2 and v1.shape[1] == l1 and v2.shape[1] == l2
        assert torch.equal(v1[:, -overlap:], v2[:, :overlap])
        assert (s1 >= 0).all() and (s2 + l2 <= t).all()


def _direct_nce(anchor, positive, others):
    return -math.log(math.exp(anchor @ positive) /
                     sum(math.exp(anchor @ o) for o in others))


def _direct_hierarchical(z1, z2, alpha=0.5):
    """The paper's definition, written with loops over plain numbers."""
    def inst(a, b):
        B, T = a.shape[:2]
        total = 0.0
        for t in range(T):
            items = [a[i, t] for i in range(B)] + [b[i, t] for i in range(B)]
            for k in range(2 * B):
                pos = items[(k + B) % (2 * B)]
                total += _direct_nce(items[k], pos, [o for j, o in enumerate(items) if j != k])
        return total / (2 * B * T)

    def temp(a, b):
        B, T = a.shape[:2]
        total = 0.0
        for i in range(B):
            items = [a[i, t] for t in range(T)] + [b[i, t] for t in range(T)]
            for k in range(2 * T):
                pos = items[(k + T) % (2 * T)]
                total += _direct_nce(items[k], pos, [o for j, o in enumerate(items) if j != k])
        return total / (2 * B * T)

    # scale 0 (T=2): both terms; scale 1 (max-pooled, T=1): instance only
    pooled1, pooled2 = z1.max(axis=1, keepdims=True), z2.max(axis=1, keepdims=True)
    return (alpha * inst(z1, z2) + (1 - alpha) * temp(z1, z2) + alpha * inst(pooled1, pooled2)) / 2


def test_hierarchical_loss_matches_a_direct_computation():
    z1 = np.array([[[0.5, -0.2], [0.1, 0.3]], [[-0.4, 0.2], [0.6, -0.1]]])
    z2 = np.array([[[0.3, 0.1], [-0.2, 0.4]], [[0.2, -0.5], [0.0, 0.7]]])
    want = _direct_hierarchical(z1, z2)
    got = hierarchical_contrastive_loss(torch.tensor(z1), torch.tensor(z2))
    assert got.item() == pytest.approx(want, rel=1e-9)
    assert HierarchicalContrastiveLoss()({"z1": torch.tensor(z1), "z2": torch.tensor(z2)}, {}).item() \
        == pytest.approx(want, rel=1e-9)
    # identical views with well separated vectors give a lower loss than shuffled ones
    z = torch.randn(4, 16, 8) * 3
    assert hierarchical_contrastive_loss(z, z) < hierarchical_contrastive_loss(z, z[torch.randperm(4)])


def test_batched_outputs_fill_one_tensor_in_row_order():
    from models.ssl.base import batched_outputs
    x = torch.randn(11, 6, 2)
    seen = []

    def encode_batch(rows, xb):
        seen.append((rows.start, rows.stop))
        assert torch.equal(xb, x[rows])
        return (xb.sum(dim=1) * 2).to(torch.bfloat16)          # [b, 2], another dtype
    out = batched_outputs(x, 4, torch.device("cpu"), encode_batch)
    assert seen == [(0, 4), (4, 8), (8, 12)]                     # the last batch is the 3 left
    assert out.dtype == torch.float32 and out.shape == (11, 2)
    expected = torch.cat([(x[i:i + 4].sum(dim=1) * 2).to(torch.bfloat16).float() for i in range(0, 11, 4)])
    assert torch.equal(out, expected)
    assert batched_outputs(x[:0], 4, torch.device("cpu"), encode_batch).numel() == 0


def test_encode_pooling_shapes_and_causal_sliding_windows():
    torch.manual_seed(0)
    model = TS2Vec(2, output_dims=16, hidden_dims=8, depth=3)
    x = torch.randn(5, 40, 2)
    assert model.encode(x).shape == (5, 16)
    assert model.encode(x, pooling="last").shape == (5, 16)
    full = model.encode(x, pooling=None, batch_size=2)
    assert full.shape == (5, 40, 16)
    assert torch.allclose(model.encode(x).float(), full.max(dim=1).values, atol=1e-6)
    causal = model.encode(x, pooling=None, causal=True, sliding_length=1, sliding_padding=8)
    assert causal.shape == (5, 40, 16)
    y = x.clone()
    y[:, 25:] = 50.0                                   # change the future of step 24
    changed = model.encode(y, pooling=None, causal=True, sliding_length=1, sliding_padding=8)
    assert torch.allclose(causal[:, :25], changed[:, :25])
    assert not torch.allclose(causal[:, 25:], changed[:, 25:])
    # step t is encoded from x[t-8 .. t] only
    t = 20
    alone = model.encode(x[:, t - 8:t + 1], pooling="last")
    assert torch.allclose(causal[:, t], alone, atol=1e-5)


def test_averaged_weights_are_the_running_mean_of_training_weights():
    torch.manual_seed(0)
    model = TS2Vec(1, output_dims=8, hidden_dims=4, depth=1)
    w0 = model.encoder.input_fc.weight.detach().clone()
    with torch.no_grad():
        model.encoder.input_fc.weight.add_(1.0)
    model.after_optimizer_step(1)
    avg = model.averaged.module.input_fc.weight
    assert torch.allclose(avg, w0 + 0.5)
    assert not any(p.requires_grad for p in model.averaged.parameters())


def test_split_long_series_as_ts2vec():
    x = np.random.default_rng(0).normal(size=(2, 70, 1)).astype(np.float32)
    out = split_long_series(x, 30)                          # 70 // 30 = 2 sections of 35
    assert out.shape == (4, 35, 1)
    assert split_long_series(x, 40) is x                    # fewer than 2 sections: unchanged


def load_ucr(name, data_dir, cache_dir):
    """The project's own loader (official TRAIN/TEST, validation carved from TRAIN)."""
    from data_provider.data_factory import data_provider
    from utils.compose import compose_cfg
    cfg = compose_cfg(["data=ucr", f"data.name={name}", f"paths.data_dir={data_dir}",
                       f"paths.cache_dir={cache_dir}"])
    return data_provider(cfg)


def test_training_loss_falls_on_ecg200(data_dir, cache_dir):
    torch.manual_seed(0)
    x = load_ucr("ECG200", data_dir, cache_dir).splits["train"].arrays["x"].float()
    model = TS2Vec(1, output_dims=32, hidden_dims=16, depth=4)
    loss_fn = HierarchicalContrastiveLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(60):
        batch = {"x": x[torch.randint(0, len(x), (16,))]}
        loss = loss_fn(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step(step)
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
