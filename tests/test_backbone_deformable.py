"""Deformable attention (layers/deformable_attention.py): sampling against linear interpolation
computed directly, integer offsets, interval references, gradients to the offsets, one level and
several; the encoder (odd lengths, gradients, padding) and short real-data runs as a classifier
and as the encoder of SimCLR and TS2Vec."""
from __future__ import annotations

import math

import pytest
import torch

from layers.deformable_attention import (
    DeformableEncoder,
    MultiScaleDeformableAttention1d,
)
from layers.encoders import build_encoder
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment


def interpolate(value: torch.Tensor, position: float) -> torch.Tensor:
    """value [T, D] read at fractional step ``position`` (linear, zero outside)."""
    lo = math.floor(position)
    frac = position - lo
    at = lambda i: value[i] if 0 <= i < value.size(0) else torch.zeros(value.size(1))
    return (1 - frac) * at(lo) + frac * at(lo + 1)


def zero_offsets(attn: MultiScaleDeformableAttention1d) -> None:
    torch.nn.init.zeros_(attn.sampling_offsets.weight)
    torch.nn.init.zeros_(attn.sampling_offsets.bias)


@pytest.mark.parametrize("lengths", [(11,), (11, 6, 3)])
def test_zero_offsets_read_the_values_at_the_reference_points(lengths):
    torch.manual_seed(0)
    d, heads = 8, 2
    attn = MultiScaleDeformableAttention1d(d, heads, len(lengths), n_points=3)
    zero_offsets(attn)
    torch.nn.init.normal_(attn.attention_weights.weight)      # weights that differ per query
    values = [torch.randn(2, n, d) for n in lengths]
    query = torch.randn(2, 5, d)
    ref = torch.rand(2, 5, len(lengths), 1)
    out = attn(query, ref, values)
    # direct: softmax over levels x points of each head, value projection read at u * T - 1/2
    weights = attn.attention_weights(query).view(2, 5, heads, len(lengths), 3).flatten(-2)
    weights = weights.softmax(-1).view(2, 5, heads, len(lengths), 3)
    dh = d // heads
    expected = torch.zeros(2, 5, d)
    for b in range(2):
        for q in range(5):
            for m in range(heads):
                for lvl, n in enumerate(lengths):
                    v = attn.value_proj(values[lvl][b])[:, m * dh:(m + 1) * dh]
                    read = interpolate(v, ref[b, q, lvl, 0].item() * n - 0.5)
                    expected[b, q, m * dh:(m + 1) * dh] += weights[b, q, m, lvl].sum() * read
    assert torch.allclose(out, attn.output_proj(expected), atol=1e-5)


def identity_attention(n_levels: int = 1) -> MultiScaleDeformableAttention1d:
    """One head, one point: the output is the value map read at the sampled position."""
    attn = MultiScaleDeformableAttention1d(4, 1, n_levels, n_points=1)
    for proj in (attn.value_proj, attn.output_proj):
        torch.nn.init.eye_(proj.weight)
        torch.nn.init.zeros_(proj.bias)
    return attn


@pytest.mark.parametrize("shift", [-2, 0, 3])
def test_an_integer_offset_shifts_the_sampled_step_exactly(shift):
    torch.manual_seed(0)
    attn = identity_attention()
    zero_offsets(attn)
    torch.nn.init.constant_(attn.sampling_offsets.bias, float(shift))
    value = torch.randn(1, 10, 4)
    ref = ((torch.arange(10) + 0.5) / 10).view(1, 10)          # each step's own centre
    out = attn(torch.randn(1, 10, 4), ref, [value])
    for j in range(10):
        target = value[0, j + shift] if 0 <= j + shift < 10 else torch.zeros(4)   # zeros outside
        assert torch.allclose(out[0, j], target, atol=1e-6)


def test_interval_references_scale_the_offsets_by_the_width():
    # (centre, width): offset o moves the point by o / n_points * width / 2, as the paper's boxes
    attn = identity_attention()
    zero_offsets(attn)
    torch.nn.init.constant_(attn.sampling_offsets.bias, 1.0)
    value = torch.randn(1, 20, 4)
    ref = torch.tensor([[[[0.275, 0.4]]]])                   # centre at step 5, width 8 steps
    out = attn(torch.randn(1, 1, 4), ref, [value])
    assert torch.allclose(out[0, 0], value[0, 9], atol=1e-5)     # 5 + 1 * 8 / 2 = 9


def test_masked_values_read_as_zeros():
    attn = identity_attention()
    zero_offsets(attn)
    value = torch.randn(1, 6, 4)
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[0, 4:] = False
    ref = ((torch.arange(6) + 0.5) / 6).view(1, 6)
    out = attn(torch.randn(1, 6, 4), ref, [value], [mask])
    assert torch.allclose(out[0, :4], value[0, :4], atol=1e-6) and out[0, 4:].abs().max() == 0


@pytest.mark.parametrize("n_levels", [1, 3])
def test_gradients_reach_the_offset_predictor(n_levels):
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention1d(8, 2, n_levels, n_points=2)
    values = [torch.randn(2, 12 // 2 ** i, 8) for i in range(n_levels)]
    out = attn(torch.randn(2, 7, 8), torch.rand(2, 7), values)
    out.square().sum().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("length", [37, 1, 2])
def test_encoder_shapes_for_odd_lengths(channels, length):
    torch.manual_seed(0)
    enc = DeformableEncoder(channels, 16, d_model=8, n_heads=2, n_layers=1, d_ffn=16)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_gradients_reach_every_encoder_parameter():
    torch.manual_seed(0)
    enc = DeformableEncoder(3, 16, d_model=8, n_heads=2, n_layers=2, d_ffn=16)
    # the paper's initialisation zeroes the weights that read the query (offsets, attention),
    # so the query's position reaches the output only once training has moved them
    for layer in enc.layers:
        torch.nn.init.normal_(layer.attn.sampling_offsets.weight, std=0.1)
        torch.nn.init.normal_(layer.attn.attention_weights.weight, std=0.1)
    enc(torch.randn(2, 37, 3)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_padded_steps_do_not_change_the_observed_steps():
    # the observed extent sets the reference points, offsets and positions: a series padded at
    # the end encodes as the series alone, whatever the padding holds
    torch.manual_seed(0)
    enc = DeformableEncoder(2, 16, d_model=8, n_heads=2, n_layers=2, d_ffn=16).eval()
    x = torch.randn(2, 37, 2)
    _, _, h = assert_padding_ignored(enc, x, row=1, length=23)
    nan = x.clone()
    nan[1, 23:] = float("nan")                               # NaN = unobserved, same thing
    assert torch.allclose(enc(nan)[1, :23], h[1, :23], atol=1e-5)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        build_encoder("deformable", 1, 8, d_model=10)
    with pytest.raises(ValueError, match="stem_kernel=4 must be odd"):
        build_encoder("deformable", 1, 8, stem_kernel=4)
    with pytest.raises(ValueError, match="n_points=0"):
        build_encoder("deformable", 1, 8, n_points=0)
    with pytest.raises(ValueError, match="reference_points"):
        MultiScaleDeformableAttention1d(8, 2, 2, 2)(torch.randn(1, 3, 8), torch.rand(1, 3, 3, 1),
                                                    [torch.randn(1, 5, 8)] * 2)
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("deformable", 1, 8, depth=3)


# --- short runs on real data (UCR ECG200) ------------------------------------------------------
TINY = "{d_model:8,n_heads:2,n_levels:2,n_points:2,n_layers:1,d_ffn:16}"


def test_classification_on_ecg200(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_experiment(["task=classification", "model=deformable", "data=ucr", "data.name=ECG200",
                    "trainer.max_epochs=1", "model.repr_dim=16", f"model.encoder_kwargs={TINY}",
                    *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
