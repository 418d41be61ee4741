"""The Dual Aggregation Transformer as a 1-D backbone (layers/dual_aggregation.py): window and
channel self-attention against direct computations, the adaptive interaction's gates, the
spatial-gate FFN, masks, gradients, shapes, and short real-data runs of model=dat and of SimCLR /
TS2Vec with the dat encoder."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from layers.dual_aggregation import (
    AdaptiveInteraction,
    ChannelSelfAttention,
    DATEncoder,
    SpatialGateFFN,
    WindowAttention1d,
)
from layers.encoders import build_encoder
from models.backbone import BackboneClassifier
from tests.helpers import assert_classifier_ignores_padding, finite_scores, run_paths, read_metrics, run_experiment

TINY = {"dim": 8, "groups": 1, "depth": 2, "num_heads": 2, "window": 4}


def _direct_window_attention(att: WindowAttention1d, q, k, v, keep):
    """Full T x T attention per head, each step allowed only the observed steps of its own
    window (windows start at -offset), plus the relative position bias."""
    b, t, d = q.shape
    heads, w = att.num_heads, att.window
    e = d // heads
    i = torch.arange(t)
    out = torch.zeros(b, t, d)
    for h, offset in enumerate(att.head_offsets()):
        qh, kh, vh = (z[..., h * e:(h + 1) * e] for z in (q, k, v))
        same_window = (i[:, None] + offset) // w == (i[None, :] + offset) // w
        rel = (i[:, None] - i[None, :]).clamp(-(w - 1), w - 1) + w - 1
        scores = qh @ kh.transpose(1, 2) / math.sqrt(e) + att.position_bias[h][rel]
        allowed = same_window & keep[:, None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
        out[..., h * e:(h + 1) * e] = torch.softmax(scores, -1).nan_to_num(0.0) @ vh
    return out


@pytest.mark.parametrize("length", [12, 11, 3])
def test_window_attention_equals_per_window_softmax_attention(length):
    torch.manual_seed(0)
    att = WindowAttention1d(8, num_heads=4, window=4)
    with torch.no_grad():
        att.position_bias.normal_()
    q, k, v = (torch.randn(2, length, 8) for _ in range(3))
    keep = torch.ones(2, length, dtype=torch.bool)
    assert att.head_offsets() == [0, 0, 2, 2]          # half the heads on shifted windows
    assert torch.allclose(att(q, k, v), _direct_window_attention(att, q, k, v, keep), atol=1e-5)
    # masked steps are never keys (unequal lengths and scattered gaps)
    keep[0, length - 2:] = False
    keep[1, ::2] = False
    assert torch.allclose(att(q, k, v, keep), _direct_window_attention(att, q, k, v, keep), atol=1e-5)


def test_window_attention_does_not_leak_across_windows():
    torch.manual_seed(0)
    att = WindowAttention1d(4, num_heads=1, window=5, shifted=False)
    q, k, v = (torch.randn(1, 13, 4) for _ in range(3))
    out = att(q, k, v)
    k2, v2 = k.clone(), v.clone()
    k2[:, 5:], v2[:, 5:] = 7.0, -7.0                   # change everything outside window 0
    changed = att(q, k2, v2)
    assert torch.allclose(out[:, :5], changed[:, :5])
    assert not torch.allclose(out[:, 5:], changed[:, 5:])
    # the last, partial window (steps 10-12; padded to 15) attends over its 3 real steps only
    direct = torch.softmax(q[0, 10:] @ k[0, 10:].T / 2.0, -1) @ v[0, 10:]
    assert torch.allclose(out[0, 10:], direct, atol=1e-5)


def test_channel_attention_equals_transposed_attention_with_temperature():
    torch.manual_seed(0)
    att = ChannelSelfAttention(6, num_heads=2)
    with torch.no_grad():
        att.temperature.copy_(torch.tensor([0.5, 2.0]).view(2, 1, 1))
    q, k, v = (torch.randn(2, 9, 6) for _ in range(3))
    keep = torch.ones(2, 9, dtype=torch.bool)
    keep[1, 6:] = False

    def direct(b, h, steps):
        cols = slice(3 * h, 3 * h + 3)
        qc, kc, vc = (z[b, :steps, cols].T for z in (q, k, v))      # [channels, time]
        cos = F.normalize(qc, dim=-1) @ F.normalize(kc, dim=-1).T   # channel x channel
        return (torch.softmax(cos * att.temperature[h], dim=-1) @ vc).T

    out = att(q, k, v)
    masked = att(q, k, v, keep)
    for h in range(2):
        assert torch.allclose(out[0, :, 3 * h:3 * h + 3], direct(0, h, 9), atol=1e-5)
        # the masked series: statistics over its 6 observed steps, as the series alone
        assert torch.allclose(masked[1, :6, 3 * h:3 * h + 3], direct(1, h, 6), atol=1e-5)


@pytest.mark.parametrize("kind", ["window", "channel"])
def test_adaptive_interaction_gates_each_branch_by_the_other(kind):
    """AIM against its formula: window attention is gated channel-wise by the conv branch and
    gates it step-wise; channel attention the other way round."""
    torch.manual_seed(0)
    aim = AdaptiveInteraction(16, 2, kind, window=4).eval()
    x = torch.randn(2, 10, 16)
    q, k, v = aim.qkv(x).chunk(3, dim=-1)
    attended = aim.attention(q, k, v).transpose(1, 2)
    conv = aim.dwconv(v.transpose(1, 2))

    def pooled(h):                                                # [B, C, T] -> [B, C, 1]
        return aim.channel_map(h.mean(-1)).unsqueeze(-1)

    if kind == "window":
        a = attended * torch.sigmoid(pooled(conv))
        c = conv * torch.sigmoid(aim.spatial_map(attended))
    else:
        a = attended * torch.sigmoid(aim.spatial_map(conv))
        c = conv * torch.sigmoid(pooled(attended))
    assert torch.allclose(aim(x), aim.proj((a + c).transpose(1, 2)), atol=1e-5)


def test_spatial_gate_ffn_gates_half_the_channels_by_a_depthwise_conv_of_the_other():
    torch.manual_seed(0)
    ffn = SpatialGateFFN(4, 6)
    x = torch.randn(2, 7, 4)
    hidden = F.gelu(ffn.fc1(x))
    x1, x2 = hidden[..., :3], hidden[..., 3:]
    x2 = F.layer_norm(x2, (3,), ffn.norm.weight, ffn.norm.bias)
    gate = F.conv1d(x2.transpose(1, 2), ffn.conv.weight, ffn.conv.bias, padding=1, groups=3)
    assert torch.allclose(ffn(x), ffn.fc2(x1 * gate.transpose(1, 2)), atol=1e-5)


def test_blocks_alternate_window_and_channel_attention_and_every_parameter_learns():
    torch.manual_seed(0)
    enc = DATEncoder(3, 8, **{**TINY, "groups": 2})
    kinds = [type(b.attn.attention).__name__ for g in enc.groups for b in g.blocks]
    assert kinds == ["WindowAttention1d", "ChannelSelfAttention"] * 2
    enc(torch.randn(4, 21, 3)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("channels,length", [(1, 37), (3, 37), (1, 1), (3, 5)])
def test_odd_lengths_and_channels_keep_their_shape(channels, length):
    torch.manual_seed(0)
    enc = build_encoder("dat", channels, 16, **TINY)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_padded_steps_do_not_change_the_observed_outputs():
    """An unequal-length batch: the padded series' observed steps get what the series alone gets."""
    torch.manual_seed(0)
    model = BackboneClassifier(2, 3, "dat", repr_dim=16, encoder_kwargs=TINY).eval()
    assert_classifier_ignores_padding(model)


def test_bad_arguments_are_refused_with_the_key():
    with pytest.raises(ValueError, match="num_heads"):
        DATEncoder(1, 8, dim=10, num_heads=4)
    with pytest.raises(ValueError, match="window=0"):
        DATEncoder(1, 8, window=0)
    with pytest.raises(ValueError, match="expansion"):
        DATEncoder(1, 8, expansion=0)
    with pytest.raises(ValueError, match="attention='spatial'"):
        AdaptiveInteraction(8, 2, "spatial")
    with pytest.raises(ValueError, match="check model.encoder_kwargs"):
        build_encoder("dat", 1, 8, heads=4)


# ------------------------------------------------------------------------------ real data


def test_dat_classifies_ecg200(data_dir, cache_dir, tmp_path):
    run_experiment(["task=classification", "model=dat", *run_paths(data_dir, cache_dir),
                    "trainer.max_epochs=1", "model.encoder_kwargs.dim=16",
                    "model.encoder_kwargs.groups=1"], tmp_path)
    metrics = read_metrics(tmp_path)
    assert finite_scores(metrics["test"]) and finite_scores(metrics["val"])
