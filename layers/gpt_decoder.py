"""GPT-1's decoder (Radford et al. 2018): a stack of post-norm blocks with causal self-attention,
shared by the models that predict the next token of a sequence (models/ssl/gpt.py over patches,
models/gpt_forecaster.py over one channel's patches, models/vq_prior.py over codebook indices).

Block: x = LN(x + Drop(Attn(x))); x = LN(x + Drop(MLP(x))), the MLP with GELU (GPT-1's tanh
approximation); the causal mask lets position i attend to positions <= i only. ``init_gpt``
draws GPT-1's initial weights: N(0, 0.02), biases zero, LayerNorm gain 1.
"""
from __future__ import annotations

import torch
from torch import nn

from layers.attention import causal_mask


class DecoderBlock(nn.Module):
    """GPT-1's post-norm block: x = LN(x + Drop(Attn(x))); x = LN(x + Drop(MLP(x)))."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(approximate="tanh"),
                                 nn.Linear(d_ff, d_model))
        self.ln_2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
        x = self.ln_1(x + self.drop(a))
        return self.ln_2(x + self.drop(self.mlp(x)))


class GPTDecoder(nn.Module):
    """``depth`` DecoderBlocks under one causal mask: h [B, N, d_model] -> [B, N, d_model]."""

    def __init__(self, d_model: int, depth: int, num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(DecoderBlock(d_model, num_heads, d_ff, dropout)
                                    for _ in range(depth))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mask = causal_mask(h.size(1), h.size(1), h.device)
        for block in self.blocks:
            h = block(h, mask)
        return h


def init_gpt(module: nn.Module, std: float = 0.02) -> None:
    """GPT-1's initialisation of every Linear, Embedding and attention projection in ``module``:
    weights N(0, std), biases zero (LayerNorms keep gain 1, bias 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            nn.init.normal_(m.in_proj_weight, std=std)
            nn.init.zeros_(m.in_proj_bias)
