"""MixConv (layers/mixconv.py): the mixed depthwise layer against separate depthwise convs, the
MixNet block and encoder (gradients, odd lengths, masks), and short real-data runs as a
classifier and as the encoder of SimCLR and TS2Vec."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layers.encoders import build_encoder, pool
from layers.mixconv import MixBlock, MixConv1d, MixConvEncoder, equal_split
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment


def test_equal_split_gives_the_remainder_to_the_first_group():
    assert equal_split(12, 4) == [3, 3, 3, 3]
    assert equal_split(10, 3) == [4, 3, 3]


def test_mixconv_equals_separate_depthwise_convs_on_the_channel_groups():
    torch.manual_seed(0)
    mix = MixConv1d(10, (3, 5, 7))
    x = torch.randn(2, 10, 23)
    expected, start = [], 0
    for size, k, conv in zip([4, 3, 3], (3, 5, 7), mix.convs):
        alone = nn.Conv1d(size, size, k, padding=k // 2, groups=size, bias=False)
        alone.weight.data.copy_(conv.weight.data)
        expected.append(alone(x[:, start:start + size]))
        start += size
    assert torch.allclose(mix(x), torch.cat(expected, dim=1), atol=1e-6)


def test_mixconv_equals_one_depthwise_conv_with_centred_zero_padded_kernels():
    # the direct computation: channel c convolved with its group's kernel, centred in k_max taps
    torch.manual_seed(0)
    mix = MixConv1d(6, (3, 5, 9))
    weight = torch.cat([F.pad(conv.weight, ((9 - conv.kernel_size[0]) // 2,) * 2)
                        for conv in mix.convs])
    x = torch.randn(3, 6, 17)
    assert torch.allclose(mix(x), F.conv1d(x, weight, padding=4, groups=6), atol=1e-6)


def test_mixblock_is_an_inverted_bottleneck_with_a_residual_only_at_equal_width():
    torch.manual_seed(0)
    same, wider = MixBlock(8, 8, (3, 5)).eval(), MixBlock(8, 12, (3, 5)).eval()
    x = torch.randn(2, 8, 15)
    assert same.residual and not wider.residual
    assert same.mix.splits == [12, 12]                  # expansion 3 -> 24 channels, 2 groups
    body = same.project(same.se(same.mix_out(same.mix(same.expand(x)))))
    assert torch.allclose(same(x), x + body, atol=1e-6)
    assert wider(x).shape == (2, 12, 15)


@pytest.mark.parametrize("channels,length", [(1, 37), (3, 37), (3, 1)])
def test_encoder_shapes_for_odd_lengths(channels, length):
    torch.manual_seed(0)
    enc = MixConvEncoder(channels, 16, stem_width=8, widths=[8, 12])
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    enc = MixConvEncoder(3, 16, stem_width=8, widths=[8, 12])
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[0, 30:] = False
    enc(torch.randn(2, 37, 3), mask).square().mean().backward()
    silent = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


def test_padded_steps_do_not_change_the_observed_steps():
    torch.manual_seed(0)
    enc = MixConvEncoder(2, 16, stem_width=8, widths=[8, 12], kernel_sizes=(3, 5, 7)).eval()
    x = torch.randn(2, 37, 2)
    _, mask, h = assert_padding_ignored(enc, x, row=1, length=20, fill=99.0)
    assert torch.allclose(pool(h, "mean", mask)[1], enc(x[1:, :20])[0].mean(0), atol=1e-5)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="kernel_sizes.*odd"):
        build_encoder("mixconv", 1, 8, kernel_sizes=[3, 4])
    with pytest.raises(ValueError, match="expand_ratio"):
        build_encoder("mixconv", 1, 8, expand_ratio=0.5)
    with pytest.raises(ValueError, match="se_ratio"):
        build_encoder("mixconv", 1, 8, se_ratio=2)
    with pytest.raises(ValueError, match="widths"):
        build_encoder("mixconv", 1, 8, widths=[])
    with pytest.raises(ValueError, match="cannot be split"):
        MixConv1d(2, (3, 5, 7))
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("mixconv", 1, 8, depth=3)


# --- short runs on real data (UCR ECG200) ------------------------------------------------------
TINY = "{stem_width:8,widths:[8,12],kernel_sizes:[3,7],expand_ratio:2.0}"


def test_classification_on_ecg200(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_experiment(["task=classification", "model=mixconv", "data=ucr", "data.name=ECG200",
                    "trainer.max_epochs=1", "model.repr_dim=16", f"model.encoder_kwargs={TINY}",
                    *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
