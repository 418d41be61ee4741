"""Informer (Zhou et al., "Informer: Beyond Efficient Transformer for Long Sequence Time-Series
Forecasting", AAAI 2021).

Encoder: ProbSparse self-attention layers with self-attention distilling between them
(conv + BN + ELU + max-pool halving the length). Decoder: a generative ("start token")
decoder fed with the last ``label_len`` known steps followed by ``pred_len`` zeros (and the
time stamps of all of them); masked ProbSparse self-attention, full cross-attention; one
forward pass emits the whole horizon. ``attn=full`` swaps ProbSparse for full attention.
"""
from __future__ import annotations

import torch
from torch import nn

from layers.attention import AttentionLayer, FullAttention, ProbAttention
from layers.embed import DataEmbedding
from layers.informer_layers import Decoder, DecoderLayer, DistillingLayer, Encoder, EncoderLayer
from models.base import BaseModel


class Informer(BaseModel):
    def __init__(self, enc_in: int, c_out: int, seq_len: int, label_len: int, pred_len: int,
                 mark_dim: int = 4, dec_in: int | None = None, factor: int = 5,
                 d_model: int = 512, n_heads: int = 8, e_layers: int = 2, d_layers: int = 1,
                 d_ff: int = 2048, dropout: float = 0.05, attn: str = "prob",
                 embed: str = "timeF", activation: str = "gelu", distil: bool = True,
                 mix: bool = True, output_attention: bool = False):
        super().__init__()
        if attn not in ("prob", "full"):
            raise ValueError(f"model.attn must be 'prob' (ProbSparse) or 'full', got '{attn}'")
        self.seq_len, self.label_len, self.pred_len = seq_len, label_len, pred_len
        self.output_attention = output_attention
        dec_in = dec_in or enc_in
        Attn = ProbAttention if attn == "prob" else FullAttention

        self.enc_embedding = DataEmbedding(enc_in, d_model, embed, mark_dim, dropout)
        self.dec_embedding = DataEmbedding(dec_in, d_model, embed, mark_dim, dropout)
        self.encoder = Encoder(
            [EncoderLayer(AttentionLayer(Attn(False, factor, attention_dropout=dropout,
                                              output_attention=output_attention),
                                         d_model, n_heads),
                          d_model, d_ff, dropout=dropout, activation=activation)
             for _ in range(e_layers)],
            [DistillingLayer(d_model) for _ in range(e_layers - 1)] if distil else None,
            norm_layer=nn.LayerNorm(d_model))
        self.decoder = Decoder(
            [DecoderLayer(AttentionLayer(Attn(True, factor, attention_dropout=dropout),
                                         d_model, n_heads, mix=mix),
                          AttentionLayer(FullAttention(False, factor, attention_dropout=dropout),
                                         d_model, n_heads),
                          d_model, d_ff, dropout=dropout, activation=activation)
             for _ in range(d_layers)],
            norm_layer=nn.LayerNorm(d_model))
        self.projection = nn.Linear(d_model, c_out)

    def forward(self, x, x_mark=None, x_dec=None, y_mark=None):
        """x [B, seq_len, enc_in]; x_dec [B, label_len + pred_len, dec_in] (start token +
        zeros; built from x when not given) -> [B, pred_len, c_out]."""
        if x_dec is None:
            zeros = x.new_zeros(x.shape[0], self.pred_len, x.shape[2])
            x_dec = torch.cat([x[:, x.shape[1] - self.label_len:], zeros], dim=1)
        enc_out, attns = self.encoder(self.enc_embedding(x, x_mark))
        dec_out = self.decoder(self.dec_embedding(x_dec, y_mark), enc_out)
        out = self.projection(dec_out)[:, -self.pred_len:]
        return (out, attns) if self.output_attention else out
