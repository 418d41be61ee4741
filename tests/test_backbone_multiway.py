"""BEiT-3's Multiway Transformer (layers/multiway.py): each token through its own modality's
expert, attention shared by every modality, masked tokens not attended to; the encoder's
streams (leads; time and frequency on one lead), odd lengths, gradients, padding; short
real-data runs as a classifier and as the encoder of SimCLR and TS2Vec."""
from __future__ import annotations


import pytest
import torch

from layers.encoders import build_encoder
from layers.multiway import MultiwayBlock, MultiwayEncoder, spectrum
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment


def block(n_modalities: int = 3, fusion: bool = False) -> MultiwayBlock:
    torch.manual_seed(0)
    return MultiwayBlock(8, 2, 16, n_modalities, dropout=0.0, fusion=fusion).eval()


def test_each_token_goes_through_its_own_modalitys_expert():
    net = block()
    x = torch.randn(2, 7, 8)
    modality = torch.tensor([0, 0, 1, 2, 1, 0, 2])
    h = net.attend(x)
    out = net(x, modality)
    for i, m in enumerate(modality.tolist()):
        assert torch.allclose(out[:, i], h[:, i] + net.experts[m](h[:, i]), atol=1e-6)
        for other in {0, 1, 2} - {m}:                     # and not another modality's expert
            assert not torch.allclose(out[:, i], h[:, i] + net.experts[other](h[:, i]), atol=1e-3)


def test_a_fusion_block_sends_every_token_through_one_expert():
    net = block(fusion=True)
    assert len(net.experts) == 1
    x = torch.randn(2, 5, 8)
    h = net.attend(x)
    assert torch.allclose(net(x, torch.tensor([0, 1, 2, 0, 1])), h + net.experts[0](h), atol=1e-6)


def test_attention_is_one_module_shared_by_every_modality():
    net = block()
    x = torch.randn(2, 6, 8)
    # direct: multi-head softmax(QK^T / sqrt(d)) V over all tokens with the one set of weights
    q, k, v = net.attn.qkv(net.norm(x)).chunk(3, dim=-1)
    heads = lambda t: t.view(2, 6, 2, 4).transpose(1, 2)
    att = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 2.0, -1) @ heads(v)
    direct = x + net.attn.proj(att.transpose(1, 2).reshape(2, 6, 8))
    assert torch.allclose(net.attend(x), direct, atol=1e-5)
    # the token mix before the experts does not depend on which modality a token belongs to
    a, b = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([2, 1, 0, 2, 1, 0])
    delta = net(x, a) - net(x, b)
    ffn = torch.stack([net.experts[m](direct[:, i]) for i, m in enumerate(a.tolist())], 1) \
        - torch.stack([net.experts[m](direct[:, i]) for i, m in enumerate(b.tolist())], 1)
    assert torch.allclose(delta, ffn, atol=1e-5)
    # attention parameters do not grow with the modalities, experts do
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(block(2).attn) == count(block(5).attn)
    assert len(block(5).experts) == 5


def test_masked_tokens_are_not_attended_to():
    net = block()
    x = torch.randn(2, 6, 8)
    modality = torch.tensor([0, 1, 2, 0, 1, 2])
    keep = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    out = net(x, modality, keep)
    changed = x.clone()
    changed[1, 4:] = 100.0
    again = net(changed, modality, keep)
    assert torch.allclose(out[:, :4], again[:, :4], atol=1e-5)
    # the same as attending among the kept tokens only
    assert torch.allclose(out[1, :4], net(x[1:, :4], modality[:4])[0], atol=1e-5)


def test_spectrum_is_taken_over_each_series_own_extent():
    x = torch.randn(2, 20, 1)
    extent = torch.tensor([20, 13])
    spec, bands = spectrum(x, extent)
    assert torch.allclose(spec[1, :7, 0], torch.log1p(torch.fft.rfft(x[1, :13, 0], norm="ortho").abs()))
    assert bands.sum(1).tolist() == [11, 7] and spec[1, 7:].abs().max() == 0


@pytest.mark.parametrize("channels,modalities", [(1, "time_frequency"), (3, "leads"),
                                                 (3, "time_frequency")])
def test_the_streams_and_their_experts(channels, modalities):
    enc = MultiwayEncoder(channels, 16, d_model=8, n_heads=2, n_layers=2, patch_len=4,
                          modalities="auto" if channels == 1 else modalities)
    assert enc.modalities == modalities
    streams = channels if modalities == "leads" else 2
    assert len(enc.embed) == streams and len(enc.blocks[0].experts) == streams
    assert len(enc.blocks[-1].experts) == 1                         # the fusion layer on top


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("length", [37, 1, 2])
def test_encoder_shapes_for_odd_lengths(channels, length):
    torch.manual_seed(0)
    enc = MultiwayEncoder(channels, 16, d_model=8, n_heads=2, n_layers=2)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_gradients_reach_every_encoder_parameter(channels):
    torch.manual_seed(0)
    enc = MultiwayEncoder(channels, 16, d_model=8, n_heads=2, n_layers=2)
    enc(torch.randn(2, 37, channels)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("channels", [1, 2])
def test_padded_steps_do_not_change_the_observed_steps(channels):
    # padded patches are left out as keys and the spectrum covers the observed extent only:
    # a series padded at the end encodes as the series alone, whatever the padding holds
    torch.manual_seed(0)
    enc = MultiwayEncoder(channels, 16, d_model=8, n_heads=2, n_layers=2, patch_len=4).eval()
    x = torch.randn(2, 37, channels)
    assert_padding_ignored(enc, x, row=1, length=23)
    nothing = torch.zeros(2, 37, dtype=torch.bool)                # nothing observed: still finite
    assert torch.isfinite(enc(x, nothing)).all()


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="modalities='lead'"):
        build_encoder("multiway", 1, 8, modalities="lead")
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        build_encoder("multiway", 1, 8, d_model=10)
    with pytest.raises(ValueError, match="fusion_layers=5"):
        build_encoder("multiway", 1, 8, n_layers=4, fusion_layers=5)
    with pytest.raises(ValueError, match="patch_len=0"):
        build_encoder("multiway", 1, 8, patch_len=0)
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("multiway", 1, 8, depth=3)


# --- short runs on real data (UCR ECG200, UEA BasicMotions) ------------------------------------
TINY = "{d_model:8,n_heads:2,n_layers:2,d_ff:16,patch_len:4}"


@pytest.mark.parametrize("data", [("ucr", "ECG200"), ("uea", "BasicMotions")])
def test_classification_on_one_lead_and_several(data, data_dir, cache_dir, tmp_path):
    family, name = data
    require_ucr(data_dir, name, family.upper())
    run_experiment(["task=classification", "model=multiway", f"data={family}", f"data.name={name}",
                    "trainer.max_epochs=1", "model.repr_dim=16", f"model.encoder_kwargs={TINY}",
                    *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
