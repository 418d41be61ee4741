"""ATD, the Adaptive Token Dictionary (Zhang et al., "Transcending the Limit of Local Window:
Advanced Super-Resolution Transformer with Adaptive Token Dictionary", CVPR 2024), as a 1-D
encoder.

One ATD layer sums three attentions on the same normalised tokens (the paper's order):

    x <- x + WindowAttn(x) + TDCA(x, D) + ACMSA(x, TDCA's map)
    x <- x + ConvFFN(LN(x))
    D <- s * D + (1 - s) * softmax_N(InstanceNorm(A^T)) x      (adaptive refinement; s = sigmoid)

- Token-dictionary cross-attention (TDCA): every token queries a dictionary D of M tokens, with
  cosine similarity of reduced-dimension queries and keys and a learned temperature per entry:
  A = softmax(cos(x Wq, D Wk) * (1 + clamp(tau, 0, 1) log M)), output A (D Wv).
- Adaptive category-based attention (AC-MSA): each token's category is its most similar
  dictionary entry (argmax of A); tokens are sorted by category, the sorted sequence is cut
  into groups of ``category_size`` tokens, multi-head self-attention runs within each group,
  and the result is put back in the original order.
- Window attention: multi-head self-attention in windows of ``window`` tokens, shifted by half
  a window on every other layer, with a learned relative-position bias (the paper's SW-MSA).
- Each block (the paper's ATDB) has its own learned dictionary, refined layer by layer, and a
  convolution on its output with a residual connection.

1-D choices:
- Tokens are non-overlapping patches of ``patch_len`` steps (2 by default, for the cost of a
  heartbeat window on a CPU; 1 makes every step a token, as ATD's tokens are pixels); the
  paper's shallow 3x3 convolution is a width-3 convolution over the tokens. Positions come from the windows' relative bias and the convolutions, so any
  length encodes. A token's output is repeated over its steps: the encoder returns [B, T, D].
- Within-group attention uses the usual 1/sqrt(head dim) scale (the official code multiplies
  raw dot products by a learned logit scale initialised at 10).
- The last group is completed with empty slots that are never attended to (the official code
  repeats the last tokens mirrored, which counts them twice as keys); the group size is fixed,
  so the groups never depend on the length of padding.
- The shifted windows are formed by padding half a window in front (never attended), which
  gives the same windows as the paper's cyclic shift with its mask.
- ``mask`` (bool [B, T], True = observed): a token is observed when any of its steps is.
  Unobserved tokens are never keys, sort after every category, are left out of the dictionary
  refinement (its instance norm and softmax) and are zeroed before every convolution, so the
  observed steps' outputs do not depend on the padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.dual_vit import patch_tokens


def split_heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[..., N, H*d] -> [..., H, N, d]."""
    *lead, n, dim = t.shape
    return t.reshape(*lead, n, n_heads, dim // n_heads).transpose(-3, -2)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """[..., H, N, d] -> [..., N, H*d]."""
    *lead, h, n, d = t.shape
    return t.transpose(-3, -2).reshape(*lead, n, h * d)


def masked_softmax_attention(q, k, v, key_mask, bias=None):
    """softmax(q k^T / sqrt(d) + bias) v with q, k, v [G, H, n, d] and key_mask [G, n] (True =
    may be attended). A group without such a key holds no observed query either: it attends to
    all its slots, and its outputs are discarded."""
    key_mask = key_mask | ~key_mask.any(-1, keepdim=True)
    allowed = key_mask[:, None, None, :]
    if bias is not None:
        allowed = torch.zeros((), dtype=q.dtype, device=q.device).masked_fill(
            ~allowed, float("-inf")) + bias
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def zero_unobserved(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask.unsqueeze(-1).to(x.dtype)


class TokenDictionaryAttention(nn.Module):
    """TDCA: x [B, N, D] attends to the dictionary [B, M, D]; returns the output [B, N, D] and
    the attention map A [B, N, M] (used to categorise the tokens and refine the dictionary)."""

    def __init__(self, dim: int, n_tokens: int, reduced_dim: int):
        super().__init__()
        self.n_tokens = n_tokens
        self.wq, self.wk = nn.Linear(dim, reduced_dim), nn.Linear(dim, reduced_dim)
        self.wv = nn.Linear(dim, dim)
        self.tau = nn.Parameter(torch.full((n_tokens,), 0.5))

    def temperature(self) -> torch.Tensor:
        return 1 + self.tau.clamp(0, 1) * math.log(self.n_tokens)

    def forward(self, x: torch.Tensor, dictionary: torch.Tensor):
        q = F.normalize(self.wq(x), dim=-1)
        k = F.normalize(self.wk(dictionary), dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature()).softmax(-1)
        return attn @ self.wv(dictionary), attn


class CategoryAttention(nn.Module):
    """AC-MSA: self-attention within groups of ``category_size`` tokens sorted by category."""

    def __init__(self, dim: int, n_heads: int, category_size: int):
        super().__init__()
        self.n_heads, self.category_size = n_heads, category_size
        self.proj = nn.Linear(dim, dim)

    def sort_order(self, attn: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The token order [B, N]: by category (argmax of the dictionary map), unobserved
        tokens last, ties in their original order."""
        category = attn.argmax(-1)
        if mask is not None:
            category = category.masked_fill(~mask, attn.size(-1))
        return torch.sort(category, dim=-1, stable=True).indices

    def forward(self, qkv: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor | None = None):
        b, n, dim3 = qkv.shape
        order = self.sort_order(attn, mask)
        keep = torch.ones(b, n, dtype=torch.bool, device=qkv.device) if mask is None else mask
        sorted_qkv = qkv.gather(1, order.unsqueeze(-1).expand(-1, -1, dim3))
        sorted_keep = keep.gather(1, order)
        gs = self.category_size
        pad = (-n) % gs
        sorted_qkv = F.pad(sorted_qkv, (0, 0, 0, pad))
        sorted_keep = F.pad(sorted_keep, (0, pad), value=False)
        groups = sorted_qkv.reshape(b * (n + pad) // gs, gs, dim3)
        q, k, v = (split_heads(t, self.n_heads) for t in groups.chunk(3, -1))
        out = merge_heads(masked_softmax_attention(q, k, v, sorted_keep.reshape(-1, gs)))
        out = out.reshape(b, n + pad, dim3 // 3)[:, :n]
        # undo the sort exactly: the token at sorted position i goes back to order[i]
        unsorted = torch.empty_like(out).scatter_(1, order.unsqueeze(-1).expand_as(out), out)
        return self.proj(unsorted)


class WindowAttention(nn.Module):
    """Self-attention within windows of ``window`` tokens (shifted by ``shift``), with a
    learned relative-position bias per head."""

    def __init__(self, dim: int, n_heads: int, window: int, shift: int = 0):
        super().__init__()
        self.n_heads, self.window, self.shift = n_heads, window, shift
        self.bias_table = nn.Parameter(torch.randn(2 * window - 1, n_heads) * 0.02)
        idx = torch.arange(window)
        self.register_buffer("rel_index", idx[:, None] - idx[None, :] + window - 1, persistent=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, qkv: torch.Tensor, mask: torch.Tensor | None = None):
        b, n, dim3 = qkv.shape
        w = self.window
        keep = torch.ones(b, n, dtype=torch.bool, device=qkv.device) if mask is None else mask
        front = (w - self.shift) % w
        back = (-(front + n)) % w
        qkv = F.pad(qkv, (0, 0, front, back))
        keep = F.pad(keep, (front, back), value=False)
        q, k, v = (split_heads(t, self.n_heads) for t in qkv.reshape(-1, w, dim3).chunk(3, -1))
        bias = self.bias_table[self.rel_index].permute(2, 0, 1)                 # [H, w, w]
        out = merge_heads(masked_softmax_attention(q, k, v, keep.reshape(-1, w), bias))
        return self.proj(out.reshape(b, -1, dim3 // 3)[:, front:front + n])


class ConvFFN(nn.Module):
    """ATD's feed-forward: fc -> GELU -> (+ depthwise conv -> GELU) -> fc."""

    def __init__(self, dim: int, hidden: int, kernel_size: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dwconv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = zero_unobserved(F.gelu(self.fc1(x)), mask)
        h = h + F.gelu(self.dwconv(h.transpose(1, 2)).transpose(1, 2))
        return self.fc2(h)


class DictionaryRefinement(nn.Module):
    """D <- s D + (1 - s) softmax_N(InstanceNorm(A^T)) x, the norm and softmax over the
    observed tokens only; s = sigmoid(sigma) per entry (sigma starts at 0)."""

    def __init__(self, n_tokens: int, eps: float = 1e-5):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(n_tokens)), nn.Parameter(torch.zeros(n_tokens))
        self.sigma = nn.Parameter(torch.zeros(n_tokens, 1))
        self.eps = eps

    def forward(self, dictionary, attn, x, mask=None):
        a = attn.transpose(1, 2)                                                # [B, M, N]
        keep = torch.ones_like(a[:, :1], dtype=torch.bool) if mask is None else mask[:, None, :]
        w = keep.to(a.dtype)
        count = w.sum(-1, keepdim=True).clamp(min=1)
        mean = (a * w).sum(-1, keepdim=True) / count
        var = ((a - mean).square() * w).sum(-1, keepdim=True) / count
        a = (a - mean) / torch.sqrt(var + self.eps) * self.weight[:, None] + self.bias[:, None]
        keep = keep | ~keep.any(-1, keepdim=True)       # a series with no observed token
        a = a.masked_fill(~keep, float("-inf")).softmax(-1)
        s = torch.sigmoid(self.sigma)
        return s * dictionary + (1 - s) * (a @ x)


class ATDLayer(nn.Module):
    def __init__(self, dim: int, n_heads: int, window: int, shift: int, category_size: int,
                 n_tokens: int, reduced_dim: int, mlp_ratio: float, ffn_kernel: int, refine: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.window_attn = WindowAttention(dim, n_heads, window, shift)
        self.dictionary_attn = TokenDictionaryAttention(dim, n_tokens, reduced_dim)
        self.category_attn = CategoryAttention(dim, n_heads, category_size)
        self.ffn = ConvFFN(dim, int(dim * mlp_ratio), ffn_kernel)
        self.refine = DictionaryRefinement(n_tokens) if refine else None

    def forward(self, x, dictionary, mask=None):
        h = self.norm1(x)
        qkv = self.qkv(h)
        from_dictionary, attn = self.dictionary_attn(h, dictionary)
        x = x + self.window_attn(qkv, mask) + from_dictionary + self.category_attn(qkv, attn, mask)
        x = x + self.ffn(self.norm2(x), mask)
        if self.refine is not None:
            dictionary = self.refine(dictionary, attn, x, mask)
        return x, dictionary


class ATDBlock(nn.Module):
    """The paper's ATDB: a learned dictionary, ``depth`` layers (every other one with shifted
    windows; the last one does not refine), then a width-3 conv and the block's residual."""

    def __init__(self, dim: int, depth: int, n_tokens: int, **layer_kw):
        super().__init__()
        self.dictionary = nn.Parameter(torch.randn(n_tokens, dim))
        window = layer_kw["window"]
        self.layers = nn.ModuleList(
            ATDLayer(dim, shift=0 if i % 2 == 0 else window // 2, n_tokens=n_tokens,
                     refine=i < depth - 1, **layer_kw) for i in range(depth))
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h, dictionary = x, self.dictionary.expand(x.size(0), -1, -1)
        for layer in self.layers:
            h, dictionary = layer(h, dictionary, mask)
        return self.conv(zero_unobserved(h, mask).transpose(1, 2)).transpose(1, 2) + x


class ATDEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]: shallow conv, ``n_blocks`` ATD blocks, norm, conv + residual."""

    def __init__(self, in_channels: int, repr_dim: int = 128, d_model: int = 64, n_blocks: int = 2,
                 depth: int = 2, n_heads: int = 4, window: int = 16, category_size: int = 16,
                 n_tokens: int = 16, reduced_dim: int = 8, mlp_ratio: float = 2.0,
                 ffn_kernel: int = 5, patch_len: int = 2):
        super().__init__()
        for key, value in (("d_model", d_model), ("n_blocks", n_blocks), ("depth", depth),
                           ("n_heads", n_heads), ("window", window), ("category_size", category_size),
                           ("n_tokens", n_tokens), ("reduced_dim", reduced_dim),
                           ("ffn_kernel", ffn_kernel), ("patch_len", patch_len)):
            if int(value) < 1:
                raise ValueError(f"atd: {key}={value} must be a positive integer")
        if d_model % n_heads:
            raise ValueError(f"atd: d_model={d_model} must be divisible by n_heads={n_heads} "
                             "(set model.encoder_kwargs.n_heads to a divisor)")
        if ffn_kernel % 2 == 0:
            raise ValueError(f"atd: ffn_kernel={ffn_kernel} must be odd to keep the length")
        if mlp_ratio <= 0:
            raise ValueError(f"atd: mlp_ratio={mlp_ratio} must be positive")
        self.patch_len, self.repr_dim = int(patch_len), repr_dim
        self.conv_first = nn.Conv1d(in_channels * self.patch_len, d_model, 3, padding=1)
        self.embed_norm = nn.LayerNorm(d_model)
        self.blocks = nn.ModuleList(
            ATDBlock(d_model, int(depth), int(n_tokens), n_heads=int(n_heads), window=int(window),
                     category_size=int(category_size), reduced_dim=int(reduced_dim),
                     mlp_ratio=float(mlp_ratio), ffn_kernel=int(ffn_kernel))
            for _ in range(int(n_blocks)))
        self.norm = nn.LayerNorm(d_model)
        self.conv_after = nn.Conv1d(d_model, d_model, 3, padding=1)
        self.out = nn.Linear(d_model, repr_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = x.size(1)
        tokens, token_mask = patch_tokens(x, mask, self.patch_len)     # unobserved steps zeroed
        m = None if mask is None else token_mask
        shallow = self.conv_first(tokens.transpose(1, 2)).transpose(1, 2)
        h = self.embed_norm(shallow)
        for block in self.blocks:
            h = block(h, m)
        deep = zero_unobserved(self.norm(h), m)
        h = self.conv_after(deep.transpose(1, 2)).transpose(1, 2) + shallow
        return self.out(h).repeat_interleave(self.patch_len, dim=1)[:, :t]
