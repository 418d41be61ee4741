"""Forecasting layers and models on tiny inputs, against direct computations."""
import math

import numpy as np
import pytest
import torch

from layers.attention import AttentionLayer, FullAttention, ProbAttention, causal_mask
from layers.crossformer_layers import DSWEmbedding, SegmentMerging, TwoStageAttention
from layers.embed import DataEmbedding, TemporalEmbedding, sinusoid_table
from layers.informer_layers import DistillingLayer
from layers.patching import Patching, num_patches, random_patch_mask
from layers.revin import RevIN
from models.crossformer import Crossformer
from models.informer import Informer
from models.patchtst import PatchTST
from utils.losses.forecast import ForecastMSE, MaskedPatchMSE
from utils.forecast_metrics import forecast_metrics, inverse_transform


def direct_attention(q, k, v, causal=False):
    """Loop over batch and heads: softmax(q k^T / sqrt(E)) v with plain matrices."""
    B, L, H, E = q.shape
    out = torch.zeros(B, L, H, v.shape[-1], dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            s = q[b, :, h].double() @ k[b, :, h].double().T / math.sqrt(E)
            if causal:
                s = s + torch.triu(torch.full_like(s, -1e30), diagonal=1)
            out[b, :, h] = torch.softmax(s, dim=-1) @ v[b, :, h].double()
    return out


def qkv(B=2, L=9, S=9, H=2, E=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, H, E, generator=g), torch.randn(B, S, H, E, generator=g),
            torch.randn(B, S, H, E, generator=g))


@pytest.mark.parametrize("causal", [False, True])
def test_full_attention_equals_direct(causal):
    q, k, v = qkv(L=7, S=7)
    out, attn = FullAttention(causal, attention_dropout=0.0, output_attention=True)(q, k, v)
    assert torch.allclose(out.double(), direct_attention(q, k, v, causal), atol=1e-5)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 2, 7), atol=1e-6)
    if causal:
        assert (attn[..., causal_mask(7, 7)] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_probsparse_with_every_query_kept_equals_full(causal):
    q, k, v = qkv(L=12, S=12)
    prob = ProbAttention(causal, factor=100, attention_dropout=0.0)  # u = L: all queries active
    out, _ = prob(q, k, v)
    assert torch.allclose(out.double(), direct_attention(q, k, v, causal), atol=1e-5)


def test_probsparse_lazy_queries_get_mean_of_values():
    torch.manual_seed(0)
    q, k, v = qkv(B=1, L=40, S=40, H=1, E=4, seed=1)
    prob = ProbAttention(False, factor=1, attention_dropout=0.0)   # u = 1 * ceil(ln 40) = 4
    out, _ = prob(q, k, v)
    full = direct_attention(q, k, v)[0, :, 0]
    mean_v = v[0, :, 0].double().mean(0)
    rows = out[0, :, 0].double()
    active = torch.isclose(rows, full, atol=1e-5).all(-1)
    lazy = torch.isclose(rows, mean_v.expand_as(rows), atol=1e-5).all(-1)
    assert int(active.sum()) == math.ceil(math.log(40))
    assert bool((active | lazy).all())


def test_probsparse_picks_the_peaked_query():
    """A query whose scores have one large peak has the largest sparsity measurement."""
    torch.manual_seed(0)
    L, E = 30, 8
    k = torch.randn(1, L, 1, E) * 0.1
    q = torch.randn(1, L, 1, E) * 0.01
    k[0, 5, 0] = 0.0
    k[0, 5, 0, 0] = 10.0
    q[0, 17, 0, 0] = 10.0                     # query 17 attends sharply to key 5
    prob = ProbAttention(False, factor=100, attention_dropout=0.0)   # sample every key
    Q, K = q.transpose(1, 2), k.transpose(1, 2)
    top = prob._top_queries(Q, K, n_sample=L * 10, n_top=1)
    assert int(top.flatten()[0]) == 17


def test_attention_layer_shapes_and_mix():
    x = torch.randn(2, 10, 16)
    for mix in (False, True):
        layer = AttentionLayer(FullAttention(False, attention_dropout=0.0), 16, 4, mix=mix)
        out, _ = layer(x, x, x)
        assert out.shape == (2, 10, 16)


def test_distilling_halves_the_length():
    layer = DistillingLayer(8).eval()
    assert layer(torch.randn(2, 96, 8)).shape == (2, 48, 8)
    assert layer(torch.randn(2, 49, 8)).shape == (2, 25, 8)


def test_embeddings():
    table = sinusoid_table(10, 6)
    assert torch.allclose(table[3, 0], torch.tensor(math.sin(3.0)))
    assert torch.allclose(table[3, 1], torch.tensor(math.cos(3.0)))
    assert torch.allclose(table[4, 2], torch.tensor(math.sin(4 / 10000 ** (2 / 6))), atol=1e-6)
    emb = DataEmbedding(3, 8, "timeF", mark_dim=4, dropout=0.0)
    assert emb(torch.randn(2, 5, 3), torch.rand(2, 5, 4)).shape == (2, 5, 8)
    cal = TemporalEmbedding(8, 4, "fixed")
    marks = torch.tensor([[[12, 31, 6, 23]]])
    expected = sum(sinusoid_table(n, 8)[i] for i, n in zip([12, 31, 6, 23], [13, 32, 7, 24]))
    assert torch.allclose(cal(marks)[0, 0], expected, atol=1e-6)


def test_revin_roundtrip_and_statistics():
    x = torch.randn(3, 20, 4) * 5 + 7
    rev = RevIN(4, affine=True)
    with torch.no_grad():
        rev.weight.fill_(2.0)
        rev.bias.fill_(0.5)
    z = rev(x, "norm")
    assert torch.allclose(z.mean(1), torch.full((3, 4), 0.5), atol=1e-5)
    assert torch.allclose(rev(z, "denorm"), x, atol=1e-4)
    last = RevIN(4, affine=False, subtract_last=True)
    assert torch.allclose(last(x, "norm")[:, -1], torch.zeros(3, 4), atol=1e-6)


def test_patching_counts_and_content():
    x = torch.arange(20.0).view(1, 1, 20)
    p = Patching(20, patch_len=8, stride=4, pad_end=True)
    out = p(x)
    assert p.n == num_patches(20, 8, 4, True) == 5 and out.shape == (1, 1, 5, 8)
    assert torch.equal(out[0, 0, 1], torch.arange(4.0, 12.0))
    assert torch.equal(out[0, 0, -1], torch.tensor([16, 17, 18, 19, 19, 19, 19, 19.0]))
    q = Patching(20, patch_len=6, stride=6, pad_end=False)   # 3 patches ending at the last step
    assert torch.equal(q(x)[0, 0, 0], torch.arange(2.0, 8.0))
    mask = random_patch_mask((50, 7, 42), 0.4)
    assert (mask.sum(-1) == 42 - int(42 * 0.6)).all()


def test_losses_and_metrics_by_hand():
    pred = torch.tensor([[[1.0], [2.0]]])
    batch = {"y": torch.tensor([[[9.0], [0.0], [4.0]]])}        # label step, then horizon
    assert float(ForecastMSE()({"pred": pred}, batch)) == pytest.approx((1 + 4) / 2)
    out = {"pred": torch.zeros(1, 1, 2, 2), "target": torch.tensor([[[[1.0, 1.0], [3.0, 3.0]]]]),
           "mask": torch.tensor([[[False, True]]])}
    assert float(MaskedPatchMSE()(out)) == pytest.approx(9.0)  # only the masked patch counts
    m = forecast_metrics(np.array([2.0, 2.0]), np.array([1.0, 4.0]))
    assert m["mse"] == pytest.approx(2.5) and m["mae"] == pytest.approx(1.5)
    assert m["rmse"] == pytest.approx(math.sqrt(2.5))
    assert m["mape"] == pytest.approx((1 + 0.5) / 2) and m["mspe"] == pytest.approx((1 + 0.25) / 2)

    class S:
        mean_, scale_ = np.array([10.0, 20.0, 30.0]), np.array([1.0, 2.0, 3.0])
    assert np.allclose(inverse_transform(np.ones((2, 1)), S, [2]), 33.0)


def test_dsw_embedding_is_per_segment_linear():
    emb = DSWEmbedding(4, 5)
    x = torch.randn(2, 12, 3)
    out = emb(x)
    assert out.shape == (2, 3, 3, 5)
    assert torch.allclose(out[1, 2, 1], emb.linear(x[1, 4:8, 2]), atol=1e-6)


def test_segment_merging_concatenates_neighbours():
    merge = SegmentMerging(2, 2)
    merge.norm = torch.nn.Identity()
    with torch.no_grad():
        merge.linear.weight.copy_(torch.eye(4)[:2] + torch.eye(4)[2:])   # sum of the two halves
        merge.linear.bias.zero_()
    x = torch.arange(10.0).view(1, 1, 5, 2)                          # 5 segments -> 3
    out = merge(x)
    assert out.shape == (1, 1, 3, 2)
    assert torch.equal(out[0, 0, 0], x[0, 0, 0] + x[0, 0, 1])
    assert torch.equal(out[0, 0, 2], x[0, 0, 4] + x[0, 0, 4])            # last segment repeated


def test_two_stage_attention_is_equivariant_to_dimension_order():
    """The routers treat all dimensions alike: permuting them permutes the output."""
    torch.manual_seed(0)
    tsa = TwoStageAttention(n_segments=4, n_routers=3, d_model=8, n_heads=2, d_ff=16,
                            dropout=0.0).eval()
    x = torch.randn(2, 5, 4, 8)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(tsa(x)[:, perm], tsa(x[:, perm]), atol=1e-5)


def test_models_forecast_shapes():
    torch.manual_seed(0)
    x, xm, ym = torch.randn(2, 48, 3), torch.rand(2, 48, 4), torch.rand(2, 36, 4)
    inf = Informer(3, 1, 48, 12, 24, mark_dim=4, d_model=16, n_heads=2, d_ff=16, e_layers=3)
    assert inf(x, xm, None, ym).shape == (2, 24, 1)
    assert Informer(3, 3, 48, 12, 24, d_model=16, n_heads=2, attn="full")(x, xm, None, ym).shape == (2, 24, 3)
    cross = Crossformer(3, 50, 20, seg_len=6, d_model=16, d_ff=16, n_heads=2, e_layers=2)
    assert cross(torch.randn(2, 50, 3)).shape == (2, 20, 3)
    pt = PatchTST(3, 48, 24, patch_len=8, stride=4, d_model=16, n_heads=2, d_ff=16, e_layers=1)
    assert pt(x).shape == (2, 24, 3)
    assert pt.encode(x.numpy(), pooling=None).shape == (2, pt.patching.n, 3 * 16)


def test_patchtst_channels_are_independent():
    torch.manual_seed(0)
    pt = PatchTST(3, 48, 24, patch_len=8, stride=4, d_model=16, n_heads=2, d_ff=16,
                  e_layers=2).eval()
    x = torch.randn(2, 48, 3)
    y = x.clone()
    y[:, :, 0] += torch.randn(2, 48)
    a, b = pt(x), pt(y)
    assert torch.allclose(a[..., 1:], b[..., 1:], atol=1e-5)
    assert not torch.allclose(a[..., 0], b[..., 0], atol=1e-3)


def test_patchtst_pretrain_backbone_loads_into_forecaster(tmp_path):
    torch.manual_seed(0)
    kw = dict(patch_len=8, stride=8, padding_patch=None, d_model=16, n_heads=2, d_ff=16, e_layers=1)
    pre = PatchTST(3, 48, 24, head_type="pretrain", **kw)
    out = pre({"x": torch.randn(4, 48, 3)})
    assert out["pred"].shape == out["target"].shape == (4, 3, 6, 8)
    torch.save({"model": pre.state_dict()}, tmp_path / "best.pt")
    ft = PatchTST(3, 48, 24, pretrained=str(tmp_path / "best.pt"), freeze_backbone=True, **kw)
    assert torch.equal(ft.backbone.W_P.weight, pre.backbone.W_P.weight)
    assert not any(p.requires_grad for p in ft.backbone.parameters())
    with pytest.raises(ValueError, match="patch_len"):
        PatchTST(3, 96, 24, pretrained=str(tmp_path / "best.pt"), **kw)
