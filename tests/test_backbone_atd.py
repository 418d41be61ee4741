"""ATD as a 1-D backbone (layers/token_dictionary.py): dictionary cross-attention, category
attention and window attention against direct computations, the dictionary refinement,
masking, shapes, gradients, and short real runs on ECG200."""
from __future__ import annotations

import math

import pytest
import torch

from layers.encoders import build_encoder
from layers.token_dictionary import (ATDEncoder, CategoryAttention, DictionaryRefinement,
                                     TokenDictionaryAttention, WindowAttention)
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment

SMALL = dict(d_model=8, n_blocks=2, depth=2, n_heads=2, window=4, category_size=5, n_tokens=4,
             reduced_dim=4, mlp_ratio=1.0, ffn_kernel=3, patch_len=2)


def softmax_attention(q, k, v, bias=0.0):
    """Plain multi-head attention on [H, n, d] tensors."""
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + bias, -1) @ v


def heads(t, h):
    n, d = t.shape
    return t.reshape(n, h, d // h).transpose(0, 1)


def merge(t):
    h, n, d = t.shape
    return t.transpose(0, 1).reshape(n, h * d)


def test_dictionary_cross_attention_equals_the_direct_softmax():
    torch.manual_seed(0)
    tdca = TokenDictionaryAttention(8, n_tokens=5, reduced_dim=3)
    with torch.no_grad():
        tdca.tau.copy_(torch.tensor([0.0, 0.3, 0.5, 1.0, 2.0]))  # the last is clamped to 1
    x, dictionary = torch.randn(2, 7, 8), torch.randn(2, 5, 8)
    out, attn = tdca(x, dictionary)
    q = x @ tdca.wq.weight.T + tdca.wq.bias
    k = dictionary @ tdca.wk.weight.T + tdca.wk.bias
    v = dictionary @ tdca.wv.weight.T + tdca.wv.bias
    cosine = (q / q.norm(dim=-1, keepdim=True)) @ (k / k.norm(dim=-1, keepdim=True)).transpose(1, 2)
    scale = 1 + torch.tensor([0.0, 0.3, 0.5, 1.0, 1.0]) * math.log(5)     # per dictionary entry
    expected = torch.softmax(cosine * scale, -1)
    assert torch.allclose(attn, expected, atol=1e-6)
    assert torch.allclose(out, expected @ v, atol=1e-5)


def category_attention_by_hand(cat, qkv, attn, mask=None):
    """Sort by category (unobserved last, ties in order), attend group by group, unsort."""
    b, n, dim3 = qkv.shape
    h, gs = cat.n_heads, cat.category_size
    out = torch.zeros(b, n, dim3 // 3)
    for i in range(b):
        category = attn[i].argmax(-1).tolist()
        keep = [True] * n if mask is None else mask[i].tolist()
        order = sorted(range(n), key=lambda j: (category[j] if keep[j] else 10 ** 6, j))
        for start in range(0, n, gs):
            members = order[start:start + gs]
            keys = [j for j in members if keep[j]] or members
            q, k, v = qkv[i].chunk(3, -1)
            res = softmax_attention(heads(q[members], h), heads(k[keys], h), heads(v[keys], h))
            out[i, members] = merge(res)
    return out @ cat.proj.weight.T + cat.proj.bias


def test_category_attention_equals_group_by_group_attention_on_the_sorted_tokens():
    torch.manual_seed(0)
    cat = CategoryAttention(8, n_heads=2, category_size=4)
    qkv, attn = torch.randn(2, 11, 24), torch.randn(2, 11, 3).softmax(-1)   # 11 = 2 groups + 3
    assert torch.allclose(cat(qkv, attn), category_attention_by_hand(cat, qkv, attn), atol=1e-5)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 6:] = False
    mask[0, 2] = False
    assert torch.allclose(cat(qkv, attn, mask)[mask],
                          category_attention_by_hand(cat, qkv, attn, mask)[mask], atol=1e-5)


def test_category_attention_with_one_group_is_full_attention_in_the_original_order():
    """Groups as large as the sequence: the sort must be undone exactly, whatever the categories."""
    torch.manual_seed(0)
    cat = CategoryAttention(8, n_heads=2, category_size=16)
    qkv, attn = torch.randn(1, 9, 24), torch.randn(1, 9, 4).softmax(-1)
    q, k, v = (heads(t, 2) for t in qkv[0].chunk(3, -1))
    full = merge(softmax_attention(q, k, v)) @ cat.proj.weight.T + cat.proj.bias
    assert torch.allclose(cat(qkv, attn)[0], full, atol=1e-5)


def test_tokens_sort_by_their_most_similar_dictionary_entry():
    cat = CategoryAttention(4, n_heads=1, category_size=2)
    attn = torch.tensor([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]])
    assert cat.sort_order(attn, None).tolist() == [[1, 3, 0, 2]]
    assert cat.sort_order(attn, torch.tensor([[True, False, True, True]])).tolist() == [[3, 0, 2, 1]]


@pytest.mark.parametrize("shift", [0, 2])
def test_window_attention_equals_attention_within_each_window(shift):
    torch.manual_seed(0)
    win = WindowAttention(8, n_heads=2, window=4, shift=shift)
    qkv = torch.randn(1, 10, 24)
    q, k, v = qkv[0].chunk(3, -1)
    rel = win.bias_table[torch.arange(4)[:, None] - torch.arange(4)[None, :] + 3].permute(2, 0, 1)
    out = torch.zeros(10, 8)
    # windows start at -shift (the paper's cyclic shift by half a window, with its mask)
    start = -((4 - shift) % 4)
    for s in range(start, 10, 4):
        idx = [j for j in range(s, s + 4) if 0 <= j < 10]
        pos = torch.tensor(idx) - s
        bias = rel[:, pos][:, :, pos]
        out[idx] = merge(softmax_attention(heads(q[idx], 2), heads(k[idx], 2), heads(v[idx], 2), bias))
    assert torch.allclose(win(qkv)[0], out @ win.proj.weight.T + win.proj.bias, atol=1e-5)


def test_dictionary_refinement_mixes_the_dictionary_with_the_attended_tokens():
    torch.manual_seed(0)
    refine = DictionaryRefinement(3)
    dictionary, attn, x = torch.randn(2, 3, 4), torch.randn(2, 6, 3).softmax(-1), torch.randn(2, 6, 4)
    norm = torch.nn.InstanceNorm1d(3, affine=True)
    expected = 0.5 * dictionary + 0.5 * torch.softmax(norm(attn.transpose(1, 2)), -1) @ x
    assert torch.allclose(refine(dictionary, attn, x), expected, atol=1e-5)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    got = refine(dictionary, attn, x, mask)
    alone = refine(dictionary[1:], attn[1:, :4], x[1:, :4])    # masked tokens left out
    assert torch.allclose(got[1], alone[0], atol=1e-5)


def test_masked_steps_do_not_change_the_observed_outputs():
    torch.manual_seed(0)
    enc = ATDEncoder(2, 8, **SMALL).eval()
    x = torch.randn(3, 40, 2)
    assert_padding_ignored(enc, x, row=1, length=25, fill=5.0)
    # masked steps inside a series (a timestamp mask): their values do not matter either
    holes = torch.ones(1, 40, dtype=torch.bool)
    holes[0, 10:14] = False
    other = x[2:3].clone()
    other[0, 10:14] = -7.0
    assert torch.allclose(enc(x[2:3], holes), enc(other, holes), atol=1e-6)


@pytest.mark.parametrize("channels,length", [(1, 37), (3, 37), (1, 1), (3, 5)])
def test_any_length_and_channel_count_encodes(channels, length):
    enc = ATDEncoder(channels, 16, **SMALL)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    enc = ATDEncoder(3, 8, **SMALL)
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[0, 30:] = False
    enc(torch.randn(2, 37, 3), mask).square().mean().backward()
    silent = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="n_heads=3"):
        build_encoder("atd", 1, 8, d_model=8, n_heads=3)
    with pytest.raises(ValueError, match="category_size=0"):
        build_encoder("atd", 1, 8, category_size=0)
    with pytest.raises(ValueError, match="ffn_kernel=4"):
        build_encoder("atd", 1, 8, ffn_kernel=4)
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("atd", 1, 8, n_semantic=4)


# --- short runs on real data (UCR ECG200) ------------------------------------------------------
TINY = ('{d_model:16,n_blocks:1,depth:2,n_heads:2,window:8,category_size:8,n_tokens:4,'
        'reduced_dim:4,mlp_ratio:1.0,patch_len:2}')


def test_classification_on_ecg200(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_experiment(["task=classification", "model=atd", "data=ucr", "data.name=ECG200",
                    "trainer.max_epochs=1", "model.repr_dim=16", f"model.encoder_kwargs={TINY}",
                    *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
