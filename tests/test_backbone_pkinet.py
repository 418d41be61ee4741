"""PKINet (layers/pkinet.py): the poly-kernel inception sum against separate convs, context
anchor attention against its layers composed by hand, the PKI block's gating, the encoder
(gradients, odd lengths, masks), and short real-data runs as a classifier and as the encoder of
SimCLR and TS2Vec."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from layers.encoders import build_encoder, pool
from layers.pkinet import ContextAnchorAttention, PKIBlock, PKINetEncoder, PolyKernelInception
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment


def _depthwise(x, conv):
    return F.conv1d(x, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2, groups=x.size(1))


def test_inception_branch_sum_equals_separate_convs_applied_and_summed():
    torch.manual_seed(0)
    pki = PolyKernelInception(6, (3, 5, 7, 9, 11)).eval()
    for conv in [pki.local, *pki.branches]:              # non-zero biases too
        torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 6, 23)
    local = _depthwise(x, pki.local)                     # the small-kernel conv L
    expected = local + sum(_depthwise(local, b) for b in pki.branches)
    assert [b.kernel_size[0] for b in pki.branches] == [5, 7, 9, 11]
    assert all(b.dilation == (1,) for b in [pki.local, *pki.branches])
    assert torch.allclose(pki.branch_sum(x), expected, atol=1e-5)
    assert torch.allclose(pki(x), pki.fuse(expected), atol=1e-5)   # fused by the pointwise conv


def test_inception_gradients_match_the_separate_branches():
    torch.manual_seed(0)
    pki = PolyKernelInception(4, (3, 5, 7))
    x = torch.randn(2, 4, 15)
    pki.branch_sum(x).square().sum().backward()
    merged = [b.weight.grad.clone() for b in pki.branches]
    pki.zero_grad()
    local = _depthwise(x, pki.local)
    (local + sum(_depthwise(local, b) for b in pki.branches)).square().sum().backward()
    assert all(torch.allclose(m, b.weight.grad, atol=1e-4) for m, b in zip(merged, pki.branches))


def test_context_anchor_attention_is_a_gate_composed_of_its_layers():
    torch.manual_seed(0)
    caa = ContextAnchorAttention(5, kernel_size=7)
    x = 3 * torch.randn(2, 5, 29)
    gate = caa(x)
    a = F.avg_pool1d(x, 7, stride=1, padding=3)          # zero padding counts, as AvgPool2d
    a = F.conv1d(a, caa.conv1.weight, caa.conv1.bias)
    a = _depthwise(_depthwise(a, caa.strip1), caa.strip2)  # the two strips, both along time
    expected = torch.sigmoid(F.conv1d(a, caa.conv2.weight, caa.conv2.bias))
    assert gate.shape == x.shape
    assert ((gate > 0) & (gate < 1)).all()
    assert torch.allclose(gate, expected, atol=1e-6)
    assert caa.strip1.kernel_size == caa.strip2.kernel_size == (7,)


def test_pki_block_multiplies_the_inception_output_by_the_gate():
    torch.manual_seed(0)
    block = PKIBlock(8, (3, 5, 7), caa_kernel_size=5, layer_scale=0.5).eval()
    x = torch.randn(2, 8, 19)
    y = block.pre(block.norm1(x))
    p = block.inception(y)
    mid = x + 0.5 * block.post(p + p * block.caa(y))
    expected = mid + 0.5 * block.ffn(block.norm2(mid))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_caa_strips_grow_by_two_per_block_of_a_stage():
    enc = PKINetEncoder(1, 8, stem_width=8, widths=[16], depths=[3], caa_kernel_size=11)
    assert [b.caa.strip1.kernel_size[0] for b in enc.stages[0].blocks] == [11, 13, 15]


@pytest.mark.parametrize("channels,length", [(1, 37), (3, 37), (3, 1)])
def test_encoder_shapes_for_odd_lengths(channels, length):
    torch.manual_seed(0)
    enc = PKINetEncoder(channels, 16, stem_width=8, widths=[16, 16], depths=[1, 1])
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    enc = PKINetEncoder(3, 16, stem_width=8, widths=[16, 16], depths=[1, 1], dropout=0.0)
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[0, 30:] = False
    enc(torch.randn(2, 37, 3), mask).square().mean().backward()
    silent = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


def test_padded_steps_do_not_change_the_observed_steps():
    torch.manual_seed(0)
    enc = PKINetEncoder(2, 16, stem_width=8, widths=[16, 16], depths=[1, 2]).eval()
    x = torch.randn(2, 37, 2)
    _, mask, h = assert_padding_ignored(enc, x, row=1, length=20, fill=99.0)
    assert torch.allclose(pool(h, "mean", mask)[1], enc(x[1:, :20])[0].mean(0), atol=1e-5)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="kernel_sizes"):
        build_encoder("pkinet", 1, 8, kernel_sizes=[3, 6])
    with pytest.raises(ValueError, match="kernel_sizes"):
        build_encoder("pkinet", 1, 8, kernel_sizes=[3])
    with pytest.raises(ValueError, match="widths and depths"):
        build_encoder("pkinet", 1, 8, widths=[16, 32], depths=[1])
    with pytest.raises(ValueError, match="expansion"):
        build_encoder("pkinet", 1, 8, expansion=0)
    with pytest.raises(ValueError, match="caa_kernel_size"):
        build_encoder("pkinet", 1, 8, caa_kernel_size=10)
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("pkinet", 1, 8, dilations=[1, 2])


# --- short runs on real data (UCR ECG200) ------------------------------------------------------
TINY = "{stem_width:8,widths:[16],depths:[1],kernel_sizes:[3,5,7],caa_kernel_size:5,ffn_scale:2.0}"


def test_classification_on_ecg200(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_experiment(["task=classification", "model=pkinet", "data=ucr", "data.name=ECG200",
                    "trainer.max_epochs=1", "model.repr_dim=16", f"model.encoder_kwargs={TINY}",
                    *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
