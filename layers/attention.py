"""Attention for the forecasting Transformers.

Inner attentions take per-head tensors queries [B, L, H, E], keys [B, S, H, E], values
[B, S, H, D] and return (context [B, L, H, D], attention weights or None).
``AttentionLayer`` adds the query/key/value/output projections around one of them.

ProbAttention is Informer's ProbSparse self-attention (Zhou et al., AAAI 2021, Sec. 3.1):
only the u = c * ceil(ln L_Q) "active" queries, ranked by the sparsity measurement
M(q, K) = max_j(q k_j / sqrt d) - (1 / L_K) sum_j (q k_j / sqrt d) estimated on
U = c * ceil(ln L_K) randomly sampled keys, get a full attention row; every other ("lazy")
query, whose attention is close to uniform, gets the mean of the values it may see.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def causal_mask(L: int, S: int, device=None) -> torch.Tensor:
    """True where query i must not see key j (j > i)."""
    return torch.triu(torch.ones(L, S, dtype=torch.bool, device=device), diagonal=1)


class FullAttention(nn.Module):
    """Scaled dot-product attention softmax(QK^T / sqrt(E)) V, optionally causal."""

    def __init__(self, mask_flag: bool = False, factor: int = 5, scale: float | None = None,
                 attention_dropout: float = 0.1, output_attention: bool = False):
        super().__init__()
        self.mask_flag, self.scale = mask_flag, scale
        self.output_attention = output_attention
        self.dropout = nn.Dropout(attention_dropout)

    def forward(self, queries, keys, values, attn_mask=None):
        B, L, H, E = queries.shape
        S = keys.shape[1]
        scale = self.scale or 1.0 / math.sqrt(E)
        scores = torch.einsum("blhe,bshe->bhls", queries, keys) * scale
        if self.mask_flag:
            mask = causal_mask(L, S, queries.device) if attn_mask is None else attn_mask
            scores = scores.masked_fill(mask, float("-inf"))
        attn = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.einsum("bhls,bshd->blhd", attn, values).contiguous()
        return out, (attn if self.output_attention else None)


class ProbAttention(nn.Module):
    """ProbSparse self-attention; ``factor`` is the sampling factor c of the paper."""

    def __init__(self, mask_flag: bool = False, factor: int = 5, scale: float | None = None,
                 attention_dropout: float = 0.1, output_attention: bool = False):
        super().__init__()
        self.mask_flag, self.factor, self.scale = mask_flag, factor, scale
        self.output_attention = output_attention
        self.dropout = nn.Dropout(attention_dropout)

    @torch.no_grad()
    def _top_queries(self, Q, K, n_sample: int, n_top: int, chunk_elems: int = 2**25):
        """Indices [B, H, n_top] of the queries with the largest sparsity measurement.
        Only an index set comes out (no gradient flows through a selection), so it runs
        without autograd and in query chunks to bound the sampled-keys tensor's memory."""
        B, H, L_Q, E = Q.shape
        L_K = K.shape[2]
        # every query gets its own random sample of keys (with replacement, as in the paper)
        idx = torch.randint(L_K, (L_Q, n_sample), device=Q.device)
        step = max(1, chunk_elems // max(1, B * H * n_sample * E))
        M = torch.empty(B, H, L_Q, dtype=Q.dtype, device=Q.device)
        for s in range(0, L_Q, step):
            K_sample = K[:, :, idx[s:s + step], :]                     # [B, H, l, U, E]
            qk = torch.einsum("bhle,bhlue->bhlu", Q[:, :, s:s + step], K_sample)
            M[:, :, s:s + step] = qk.max(dim=-1).values - qk.sum(dim=-1) / L_K
        return M.topk(n_top, dim=-1, sorted=False).indices

    def forward(self, queries, keys, values, attn_mask=None):
        B, L_Q, H, E = queries.shape
        L_K = keys.shape[1]
        Q, K, V = (t.transpose(1, 2) for t in (queries, keys, values))  # [B, H, L, *]
        n_sample = min(self.factor * math.ceil(math.log(L_K)), L_K)
        n_top = min(self.factor * math.ceil(math.log(L_Q)), L_Q)
        top = self._top_queries(Q, K, n_sample, n_top)                 # [B, H, u]

        # lazy queries: uniform attention = mean of the values they may attend to
        if self.mask_flag:
            if L_Q != L_K:
                raise ValueError("masked ProbSparse attention is self-attention only "
                                 f"(got {L_Q} queries, {L_K} keys)")
            steps = torch.arange(1, L_K + 1, device=V.device, dtype=V.dtype)
            context = V.cumsum(dim=2) / steps[:, None]
        else:
            context = V.mean(dim=2, keepdim=True).expand(B, H, L_Q, V.shape[-1])
        context = context.clone()

        # active queries: their exact attention rows
        b = torch.arange(B, device=Q.device)[:, None, None]
        h = torch.arange(H, device=Q.device)[None, :, None]
        Q_top = Q[b, h, top]                                           # [B, H, u, E]
        scores = torch.matmul(Q_top, K.transpose(-2, -1)) * (self.scale or 1.0 / math.sqrt(E))
        if self.mask_flag:
            keys_pos = torch.arange(L_K, device=Q.device)
            scores = scores.masked_fill(keys_pos > top[..., None], float("-inf"))
        attn = self.dropout(torch.softmax(scores, dim=-1))
        context[b, h, top] = torch.matmul(attn, V).to(context.dtype)

        full_attn = None
        if self.output_attention:
            full_attn = torch.full((B, H, L_Q, L_K), 1.0 / L_K, dtype=attn.dtype, device=attn.device)
            full_attn[b, h, top] = attn
        return context.transpose(1, 2).contiguous(), full_attn


class AttentionLayer(nn.Module):
    """Multi-head attention: project to heads, run the inner attention, project back.

    ``mix``: Informer's generative decoder reads the self-attention output as
    [B, H, L, D] memory order before merging heads (its official code's ``mix=True``),
    which mixes time steps across heads; kept as an option because the published
    Informer numbers use it.
    """

    def __init__(self, attention: nn.Module, d_model: int, n_heads: int,
                 d_keys: int | None = None, d_values: int | None = None, mix: bool = False):
        super().__init__()
        d_keys = d_keys or d_model // n_heads
        d_values = d_values or d_model // n_heads
        self.inner_attention = attention
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_model, d_keys * n_heads)
        self.value_projection = nn.Linear(d_model, d_values * n_heads)
        self.out_projection = nn.Linear(d_values * n_heads, d_model)
        self.n_heads, self.mix = n_heads, mix

    def forward(self, queries, keys, values, attn_mask=None):
        B, L, _ = queries.shape
        S, H = keys.shape[1], self.n_heads
        q = self.query_projection(queries).view(B, L, H, -1)
        k = self.key_projection(keys).view(B, S, H, -1)
        v = self.value_projection(values).view(B, S, H, -1)
        out, attn = self.inner_attention(q, k, v, attn_mask)
        if self.mix:
            out = out.transpose(2, 1).contiguous()
        return self.out_projection(out.reshape(B, L, -1)), attn
