"""Dual-ViT as a 1-D backbone (layers/dual_vit.py): the dual block's attentions against a direct
computation, linear cost, masking, shapes, gradients, and short real runs on ECG200."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from layers.dual_vit import DualBlock, DualViTEncoder, masked_adaptive_pool
from layers.encoders import build_encoder
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment

SMALL = dict(d_model=8, n_heads=2, depth=2, mlp_ratio=2.0, n_semantic=3, patch_len=3,
             layer_scale_init=1.0)


def heads(t, h):
    b, n, d = t.shape
    return t.reshape(b, n, h, d // h).transpose(1, 2)


def test_fine_tokens_attention_equals_softmax_over_the_global_tokens():
    torch.manual_seed(0)
    block = DualBlock(8, n_heads=2, mlp_ratio=2.0, layer_scale_init=1.0)
    x, z = torch.randn(2, 11, 8), torch.randn(2, 3, 8)
    h = block.norm1(x)
    z_new, _ = block.semantic_update(h, z, None)
    out, weights = block.pixel_attention(h, z_new)
    # direct: Q from the fine tokens, K and V from the (normalised) global tokens
    q = heads(h @ block.q.weight.T + block.q.bias, 2)
    kv = block.kv_norm(z_new) @ block.kv.weight.T + block.kv.bias
    k, v = heads(kv[..., :8], 2), heads(kv[..., 8:], 2)
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), -1)
    direct = (attn @ v).transpose(1, 2).reshape(2, 11, 8) @ block.proj.weight.T + block.proj.bias
    assert torch.allclose(weights, attn, atol=1e-6)
    assert torch.allclose(out, direct, atol=1e-5)
    # and the block adds it (layer scale 1) before its feed-forward
    x_out, z_out = block(x, z)
    mid = x + out
    assert torch.allclose(x_out, mid + block.ffn(block.norm2(mid)), atol=1e-5)
    assert torch.allclose(z_out, z_new)


def test_global_tokens_read_the_observed_patches_directly():
    torch.manual_seed(0)
    block = DualBlock(8, n_heads=1, mlp_ratio=2.0, layer_scale_init=1.0)
    x, z = torch.randn(1, 6, 8), torch.randn(1, 2, 8)
    mask = torch.tensor([[True, True, False, True, False, False]])
    h = block.norm1(x)
    z1 = z + block.heads.merge(_self_attention(block, z))
    q = block.z_q(block.z_q_norm(z1))
    k, v = (h @ block.z_kv.weight.T + block.z_kv.bias).chunk(2, -1)
    keep = mask[0]
    attn = torch.softmax(q @ k[:, keep].transpose(-2, -1) / math.sqrt(8), -1)
    z2 = z1 + attn @ v[:, keep]
    z3 = z2 + block.z_mlp(block.z_mlp_norm(z2))
    got, maps = block.semantic_update(h, z, mask)
    assert torch.allclose(got, z3, atol=1e-5)
    assert (maps[..., ~keep] == 0).all()                    # masked patches are not attended to


def _self_attention(block, z):
    q, k, v = (heads(t, block.heads.n_heads) for t in block.z_qkv(block.z_self_norm(z)).chunk(3, -1))
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), -1) @ v


@pytest.mark.parametrize("length", [48, 480])
def test_attention_maps_are_tokens_by_global_tokens_so_the_cost_is_linear(length):
    enc = DualViTEncoder(1, 8, **SMALL)
    n = length // SMALL["patch_len"]
    h = enc.embed_norm(enc.embed(torch.randn(2, n, 3)))
    z = enc.semantic(h, torch.ones(2, n, dtype=torch.bool))
    _, _, maps = enc.blocks[0](h, z, return_attention=True)
    assert maps["pixel_to_semantic"].shape == (2, 2, n, 3)
    assert maps["semantic_to_pixel"].shape == (2, 2, 3, n)


def test_pooling_into_global_bins_is_adaptive_pooling_over_the_observed_tokens():
    torch.manual_seed(0)
    x = torch.randn(2, 13, 4)
    full = torch.ones(2, 13, dtype=torch.bool)
    expected = F.adaptive_avg_pool1d(x.transpose(1, 2), 5).transpose(1, 2)
    assert torch.allclose(masked_adaptive_pool(x, full, 5), expected, atol=1e-6)
    mask = full.clone()
    mask[1, 9:] = False
    mask[1, 2] = False
    pooled = masked_adaptive_pool(x, mask, 5)
    observed = x[1, mask[1]]
    assert torch.allclose(pooled[1], F.adaptive_avg_pool1d(observed.T[None], 5)[0].T, atol=1e-6)


def test_padded_steps_do_not_change_the_observed_outputs():
    torch.manual_seed(0)
    enc = DualViTEncoder(2, 8, **SMALL).eval()
    assert_padding_ignored(enc, torch.randn(3, 40, 2), row=1, length=25, fill=5.0)


@pytest.mark.parametrize("channels,length", [(1, 37), (3, 37), (1, 1), (3, 5)])
def test_any_length_and_channel_count_encodes(channels, length):
    enc = DualViTEncoder(channels, 16, **SMALL)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


@pytest.mark.parametrize("scale", [1.0, 1e-6])
def test_gradients_reach_every_parameter(scale):
    torch.manual_seed(0)
    enc = DualViTEncoder(3, 8, **{**SMALL, "layer_scale_init": scale})
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[0, 30:] = False
    enc(torch.randn(2, 37, 3), mask).square().mean().backward()
    silent = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="n_heads=3"):
        build_encoder("dualvit", 1, 8, d_model=8, n_heads=3)
    with pytest.raises(ValueError, match="patch_len=0"):
        build_encoder("dualvit", 1, 8, patch_len=0)
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("dualvit", 1, 8, window=4)


# --- short runs on real data (UCR ECG200) ------------------------------------------------------
TINY = '{d_model:16,n_heads:2,depth:1,mlp_ratio:2.0,n_semantic:4,patch_len:4}'


def test_classification_on_ecg200(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_experiment(["task=classification", "model=dualvit", "data=ucr", "data.name=ECG200",
                    "trainer.max_epochs=1", "model.repr_dim=16", f"model.encoder_kwargs={TINY}",
                    *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
