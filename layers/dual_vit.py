"""Dual-ViT (Yao et al., "Dual Vision Transformer", TPAMI 2023) as a 1-D encoder.

Two pathways per block (the paper's dual block, in its order of operations):

    semantic pathway  z [B, M, D], a few global tokens that compress the sequence
        z <- z + g1 * SelfAttn(LN(z))                                   (semantic tokens mix)
        z <- z + g2 * CrossAttn(q = LN(z), k, v = LN(x))                (they read the patches)
        z <- z + g3 * MLP(LN(z))                                        (ReLU MLP, 4x)
    pixel pathway     x [B, N, D], the fine patch tokens
        x <- x + g4 * Proj(CrossAttn(q = LN(x), k, v = LN(z)))          (patches read z only)
        x <- x + g5 * FFN(LN(x))                                        (fc, depthwise conv, GELU, fc)

so every attention map is [N x M] or [M x M] or [M x N]: the cost is linear in the length.
The g's are the paper's layer scales (initial value ``layer_scale_init``, theirs 1e-6).
Before the first block the semantic tokens are made as in the paper's first stage: M learned
queries attend to the patch tokens average-pooled into M bins, and an SE-style gate mixes that
result with the pooled tokens themselves, then a LayerNorm.

1-D choices (the image model has no counterpart for these):
- Tokens are non-overlapping patches of ``patch_len`` steps, linearly embedded and normalised
  (the paper's stem ends in a LayerNorm), plus the fixed sinusoidal table so any length encodes;
  a patch's output is repeated over its steps, so the encoder returns [B, T, D].
- The paper's 7x7 average pooling becomes an adaptive pooling into ``n_semantic`` bins over the
  observed patches of each series (bins as torch's adaptive pooling), so the semantic tokens
  do not depend on the length of padding.
- One stage at one resolution: the paper's later "merge" stages (full self-attention over
  patches and semantic tokens after down-sampling) are left out; they would make the cost
  quadratic in the length, which is what the dual block avoids.
- ``mask`` (bool [B, T], True = observed): a patch is observed when any of its steps is;
  unobserved patches are never keys, are left out of the pooling, and are zeroed before the
  depthwise convolution, so the observed steps' outputs do not depend on the padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from layers.embed import sinusoid_table


def patch_tokens(x: torch.Tensor, mask: torch.Tensor | None, patch_len: int):
    """x [B, T, C] -> tokens [B, N, patch_len * C] and their mask [B, N] (a patch is observed
    when any of its steps is); NaN entries and unobserved steps become zeros."""
    b, t, c = x.shape
    keep = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask.to(torch.bool)
    x = torch.nan_to_num(x, nan=0.0) * keep.unsqueeze(-1).to(x.dtype)
    pad = (-t) % patch_len
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
        keep = F.pad(keep, (0, pad), value=False)
    n = (t + pad) // patch_len
    return x.reshape(b, n, patch_len * c), keep.reshape(b, n, patch_len).any(-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None):
    """softmax(q k^T / sqrt(d)) v over heads: q [B, H, Nq, d], k, v [B, H, Nk, d], key_mask
    [B, Nk] (True = may be attended; a series with no such key attends to all). Returns the
    output [B, H, Nq, d] and the attention map [B, H, Nq, Nk]."""
    logits = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5
    if key_mask is not None:
        key_mask = key_mask | ~key_mask.any(-1, keepdim=True)
        logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    weights = logits.softmax(-1)
    return weights @ v, weights


def masked_adaptive_pool(x: torch.Tensor, mask: torch.Tensor, bins: int) -> torch.Tensor:
    """Average the observed tokens of x [B, N, D] into ``bins`` bins [B, bins, D]: bin j holds
    the observed tokens of rank floor(j n / bins) .. ceil((j + 1) n / bins) - 1 among the n
    observed ones (torch's adaptive average pooling when all are observed)."""
    rank = mask.long().cumsum(-1) - 1                                        # [B, N]
    n = mask.long().sum(-1, keepdim=True)                                    # [B, 1]
    j = torch.arange(bins, device=x.device)[None, :, None]                   # [1, bins, 1]
    start = torch.div(j * n[:, :, None], bins, rounding_mode="floor")
    end = -torch.div(-(j + 1) * n[:, :, None], bins, rounding_mode="floor")  # ceil
    member = mask[:, None, :] & (rank[:, None, :] >= start) & (rank[:, None, :] < end)
    w = member.to(x.dtype)
    return (w @ x) / w.sum(-1, keepdim=True).clamp(min=1)


class Heads(nn.Module):
    """Split [B, N, H*d] into heads [B, H, N, d] and back."""

    def __init__(self, n_heads: int):
        super().__init__()
        self.n_heads = n_heads

    def split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, dim = t.shape
        return t.reshape(b, n, self.n_heads, dim // self.n_heads).transpose(1, 2)

    @staticmethod
    def merge(t: torch.Tensor) -> torch.Tensor:
        b, h, n, d = t.shape
        return t.transpose(1, 2).reshape(b, n, h * d)


class DepthwiseFFN(nn.Module):
    """The pixel pathway's feed-forward (PVTv2's): fc -> depthwise conv over the tokens -> GELU
    -> fc. Unobserved tokens are zeroed before the conv, as the zero padding of a shorter series."""

    def __init__(self, dim: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dwconv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc1(x)
        if mask is not None:
            h = h * mask.unsqueeze(-1).to(h.dtype)
        h = self.dwconv(h.transpose(1, 2)).transpose(1, 2)
        return self.fc2(F.gelu(h))


class DualBlock(nn.Module):
    """One dual block: x [B, N, D] patch tokens and z [B, M, D] semantic tokens in, both out."""

    def __init__(self, dim: int, n_heads: int = 2, mlp_ratio: float = 8.0,
                 layer_scale_init: float = 1e-6, kernel_size: int = 3):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dualvit: d_model={dim} must be divisible by n_heads={n_heads}")
        self.heads = Heads(n_heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        # semantic pathway
        self.z_self_norm, self.z_qkv = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim)
        self.z_q_norm, self.z_q, self.z_kv = nn.LayerNorm(dim), nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.z_mlp_norm = nn.LayerNorm(dim)
        self.z_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        # pixel pathway
        self.q, self.kv_norm, self.kv = nn.Linear(dim, dim), nn.LayerNorm(dim), nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = DepthwiseFFN(dim, int(dim * mlp_ratio), kernel_size)
        self.gammas = nn.ParameterList(
            [nn.Parameter(torch.full((dim,), float(layer_scale_init))) for _ in range(5)])

    def semantic_update(self, h: torch.Tensor, z: torch.Tensor, mask: torch.Tensor | None):
        """The semantic pathway; h = norm1(x). Returns z and its [M x N] attention map."""
        g, sp = self.gammas, self.heads.split
        q, k, v = self.z_qkv(self.z_self_norm(z)).chunk(3, -1)
        z = z + g[0] * self.heads.merge(attend(sp(q), sp(k), sp(v))[0])
        k, v = self.z_kv(h).chunk(2, -1)
        read, z_to_x = attend(sp(self.z_q(self.z_q_norm(z))), sp(k), sp(v), mask)
        z = z + g[1] * self.heads.merge(read)
        return z + g[2] * self.z_mlp(self.z_mlp_norm(z)), z_to_x

    def pixel_attention(self, h: torch.Tensor, z: torch.Tensor):
        """The fine tokens' cross-attention to the semantic tokens: (output before the layer
        scale [B, N, D], attention map [B, H, N, M])."""
        sp = self.heads.split
        k, v = self.kv(self.kv_norm(z)).chunk(2, -1)
        out, x_to_z = attend(sp(self.q(h)), sp(k), sp(v))
        return self.proj(self.heads.merge(out)), x_to_z

    def forward(self, x: torch.Tensor, z: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        h = self.norm1(x)
        z, z_to_x = self.semantic_update(h, z, mask)
        out, x_to_z = self.pixel_attention(h, z)
        x = x + self.gammas[3] * out
        x = x + self.gammas[4] * self.ffn(self.norm2(x), mask)
        if return_attention:
            return x, z, {"pixel_to_semantic": x_to_z, "semantic_to_pixel": z_to_x}
        return x, z


class SemanticTokens(nn.Module):
    """The first semantic tokens: learned queries attend to the pooled patch tokens (one head),
    an SE gate mixes that with the pooled tokens, then a LayerNorm (the paper's first stage)."""

    def __init__(self, dim: int, n_semantic: int):
        super().__init__()
        self.n_semantic = n_semantic
        self.queries = nn.Parameter(torch.randn(n_semantic, dim) * 0.02)
        self.q_embed = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.kv = nn.Linear(dim, 2 * dim)
        self.se = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 2 * dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_adaptive_pool(x, mask, self.n_semantic)                  # [B, M, D]
        k, v = self.kv(pooled).chunk(2, -1)
        q = self.q_embed(self.queries).expand(x.size(0), -1, -1)
        read = attend(q[:, None], k[:, None], v[:, None])[0][:, 0]              # [B, M, D]
        both = torch.stack([read, pooled], 2)                                   # [B, M, 2, D]
        gate = self.se(both.sum(2).mean(1)).view(x.size(0), 1, 2, -1).softmax(2)
        return self.norm((both * gate).sum(2))


class DualViTEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]: patch tokens, semantic tokens, ``depth`` dual blocks."""

    def __init__(self, in_channels: int, repr_dim: int = 128, d_model: int = 64,
                 n_heads: int = 2, depth: int = 4, mlp_ratio: float = 8.0, n_semantic: int = 8,
                 patch_len: int = 4, layer_scale_init: float = 1e-6, kernel_size: int = 3):
        super().__init__()
        for key, value in (("d_model", d_model), ("n_heads", n_heads), ("depth", depth),
                           ("n_semantic", n_semantic), ("patch_len", patch_len)):
            if int(value) < 1:
                raise ValueError(f"dualvit: {key}={value} must be a positive integer")
        if d_model % n_heads:
            raise ValueError(f"dualvit: d_model={d_model} must be divisible by n_heads={n_heads} "
                             "(set model.encoder_kwargs.n_heads to a divisor)")
        if mlp_ratio <= 0:
            raise ValueError(f"dualvit: mlp_ratio={mlp_ratio} must be positive")
        self.patch_len, self.d_model, self.repr_dim = int(patch_len), int(d_model), repr_dim
        self.embed = nn.Linear(in_channels * self.patch_len, d_model)
        self.embed_norm = nn.LayerNorm(d_model)
        self.semantic = SemanticTokens(d_model, int(n_semantic))
        self.blocks = nn.ModuleList(DualBlock(d_model, n_heads, mlp_ratio, layer_scale_init, kernel_size)
                                    for _ in range(int(depth)))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, repr_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = x.size(1)
        tokens, token_mask = patch_tokens(x, mask, self.patch_len)
        h = self.embed_norm(self.embed(tokens)) + sinusoid_table(tokens.size(1), self.d_model, x.device)
        z = self.semantic(h, token_mask)
        for block in self.blocks:
            h, z = block(h, z, token_mask)
        h = self.out(self.norm(h))
        return h.repeat_interleave(self.patch_len, dim=1)[:, :t]
