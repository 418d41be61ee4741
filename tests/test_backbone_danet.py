"""DANet's dual attention as a 1-D backbone (layers/danet.py): the position and channel modules
against direct computations, masks, gradients, shapes, and short real-data runs of
model=danet and of SimCLR / TS2Vec with the danet encoder."""
from __future__ import annotations


import pytest
import torch

from layers.danet import ChannelAttention, DANetEncoder, PositionAttention
from layers.encoders import build_encoder
from models.backbone import BackboneClassifier
from tests.helpers import assert_classifier_ignores_padding, finite_scores, run_paths, read_metrics, run_experiment

TINY = {"width": 16, "dilations": [1, 2], "head_reduction": 2, "qk_reduction": 2}


def _conv1x1(conv: torch.nn.Conv1d, h: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution written out: h [B, C, T] -> [B, T, C_out]."""
    return torch.einsum("oc,bct->bto", conv.weight[:, :, 0], h) + conv.bias


def test_position_branch_equals_softmax_qk_v_over_time():
    torch.manual_seed(0)
    pam = PositionAttention(8, qk_reduction=2)
    with torch.no_grad():
        pam.alpha.fill_(1.0)
    h = torch.randn(2, 8, 11)
    q, k, v = _conv1x1(pam.query, h), _conv1x1(pam.key, h), _conv1x1(pam.value, h)
    expected = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v          # [B, T, C]
    assert torch.allclose(pam(h), expected.transpose(1, 2) + h, atol=1e-5)
    # alpha starts at 0: the module is the identity until it learns otherwise
    assert torch.equal(PositionAttention(8)(h), h)


def test_position_branch_never_attends_to_masked_steps():
    torch.manual_seed(0)
    pam = PositionAttention(8, qk_reduction=2)
    with torch.no_grad():
        pam.alpha.fill_(1.0)
    h = torch.randn(2, 8, 11)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, 7:] = False
    mask[1, ::3] = False
    weights = pam.attention(h, mask)
    assert torch.all(weights[~mask.unsqueeze(1).expand_as(weights)] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 11))
    q, k, v = _conv1x1(pam.query, h), _conv1x1(pam.key, h), _conv1x1(pam.value, h)
    for b in range(2):          # each series attends over its observed steps only
        keep = mask[b]
        direct = torch.softmax(q[b] @ k[b, keep].T, dim=-1) @ v[b, keep]
        assert torch.allclose(pam(h, mask)[b], direct.T + h[b], atol=1e-5)
    garbage = h.clone()
    garbage[~mask.unsqueeze(1).expand_as(h)] = 1e3                       # masked steps' values
    out, changed = pam(h, mask), pam(garbage, mask)
    assert torch.allclose(out[mask.unsqueeze(1).expand_as(h)],
                          changed[mask.unsqueeze(1).expand_as(h)], atol=1e-4)


@pytest.mark.parametrize("energy", ["official", "paper"])
def test_channel_branch_equals_softmax_of_the_channel_gram_matrix(energy):
    torch.manual_seed(0)
    cam = ChannelAttention(energy)
    with torch.no_grad():
        cam.beta.fill_(1.0)
    a = torch.randn(2, 6, 13) * 0.3
    gram = a @ a.transpose(1, 2)                                         # [B, C, C]
    # the authors' code: softmax(max(E) - E), which is softmax(-E); the paper's Eq. 3: softmax(E)
    logits = -gram if energy == "official" else gram
    expected = torch.softmax(logits, dim=-1) @ a
    assert torch.allclose(cam(a), expected + a, atol=1e-5)
    # masked steps are left out of the Gram matrix
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[1, 9:] = False
    keep = a[1, :, :9]
    direct = torch.softmax(-(keep @ keep.T) if energy == "official" else keep @ keep.T, dim=-1) @ keep
    assert torch.allclose(cam(a, mask)[1, :, :9], direct + keep, atol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    enc = DANetEncoder(3, 8, **TINY)
    with torch.no_grad():      # alpha = beta = 0 at start leave the attention weights gradient-free
        enc.position.alpha.fill_(0.5)
        enc.channel.beta.fill_(0.5)
    enc(torch.randn(4, 21, 3)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # at start alpha and beta themselves get gradients, so the modules switch on
    fresh = DANetEncoder(1, 8, **TINY)
    fresh(torch.randn(4, 21, 1)).square().mean().backward()
    assert fresh.position.alpha.grad.abs() > 0 and fresh.channel.beta.grad.abs() > 0


@pytest.mark.parametrize("channels,length", [(1, 37), (3, 37), (1, 1), (3, 2)])
def test_odd_lengths_and_channels_keep_their_shape(channels, length):
    torch.manual_seed(0)
    enc = build_encoder("danet", channels, 16, **TINY)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_padded_steps_do_not_change_the_observed_outputs():
    """An unequal-length batch: the padded series' observed steps get what the series alone gets."""
    torch.manual_seed(0)
    model = BackboneClassifier(2, 3, "danet", repr_dim=16, encoder_kwargs=TINY).eval()
    with torch.no_grad():
        model.encoder.position.alpha.fill_(1.0)
        model.encoder.channel.beta.fill_(1.0)
    assert_classifier_ignores_padding(model)


def test_bad_arguments_are_refused_with_the_key():
    with pytest.raises(ValueError, match="channel_energy='soft'"):
        DANetEncoder(1, 8, channel_energy="soft")
    with pytest.raises(ValueError, match="head_reduction"):
        DANetEncoder(1, 8, width=4, head_reduction=8)
    with pytest.raises(ValueError, match="dilations"):
        DANetEncoder(1, 8, dilations=[1, 0])
    with pytest.raises(ValueError, match="check model.encoder_kwargs"):
        build_encoder("danet", 1, 8, widht=16)


# ------------------------------------------------------------------------------ real data


def test_danet_classifies_ecg200(data_dir, cache_dir, tmp_path):
    run_experiment(["task=classification", "model=danet", *run_paths(data_dir, cache_dir),
                    "trainer.max_epochs=1", "model.encoder_kwargs.width=16"], tmp_path)
    metrics = read_metrics(tmp_path)
    assert finite_scores(metrics["test"]) and finite_scores(metrics["val"])
