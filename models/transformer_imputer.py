"""Transformer encoder imputer: the vanilla Transformer (Vaswani et al. 2017) as
Time-Series-Library sets it up for imputation.

The window, with its hidden values set to 0, is embedded (value convolution + fixed
positional + time-stamp embedding, as Informer's DataEmbedding), goes through ``e_layers``
encoder layers with full self-attention over the time steps, and a linear layer maps every
step back to the channels: the output is the whole window [B, seq_len, c_out], of which the
task scores the hidden values. The model is never shown a hidden value (exp/exp_impute.py).
"""
from __future__ import annotations

from torch import nn

from layers.attention import AttentionLayer, FullAttention
from layers.embed import DataEmbedding
from layers.informer_layers import Encoder, EncoderLayer
from models.base import BaseModel


class TransformerImputer(BaseModel):
    def __init__(self, enc_in: int, c_out: int, mark_dim: int = 4, d_model: int = 128,
                 n_heads: int = 8, e_layers: int = 2, d_ff: int = 128, dropout: float = 0.1,
                 embed: str = "timeF", activation: str = "gelu", **_):
        super().__init__()
        self.embedding = DataEmbedding(enc_in, d_model, embed, mark_dim, dropout)
        self.encoder = Encoder(
            [EncoderLayer(AttentionLayer(FullAttention(False, attention_dropout=dropout), d_model, n_heads),
                          d_model, d_ff, dropout=dropout, activation=activation)
             for _ in range(e_layers)],
            norm_layer=nn.LayerNorm(d_model))
        self.projection = nn.Linear(d_model, c_out)

    def forward(self, x, x_mark=None):
        """x [B, T, enc_in] (hidden values zeroed) -> the reconstructed window [B, T, c_out]."""
        h, _ = self.encoder(self.embedding(x, x_mark))
        return self.projection(h)
