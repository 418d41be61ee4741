"""wav2vec 2.0 (Baevski, Zhou, Mohamed & Auli, NeurIPS 2020) for 1-D signals.

feature encoder f: X -> Z   strided 1-D convolutions (GroupNorm after the first, GELU);
                            LayerNorm on z; an L2 penalty on z is one of the loss parts
masking                     p = 0.065 of the steps start a span of M = 10 masked steps
                            (spans may overlap); masked projected features are replaced
                            by one learned vector; every sequence of a batch gets the same
                            number of masked steps (extra ones dropped at random) so the
                            distractors can be sampled per sequence
context network g: Z -> C   convolutional relative position embedding + Transformer
quantiser Z -> Q            Gumbel product quantiser (layers.quantizer), G = 2, V = 320,
                            temperature 2 -> 0.5 by 0.999995 per update
loss                        contrastive over masked steps with K = 100 distractors from the
                            other masked steps of the same sequence, kappa = 0.1, plus
                            0.1 x diversity loss (utils.losses.wav2vec2.Wav2Vec2Loss)

The paper's encoder has 7 layers, strides (5,2,2,2,2,2,2) = 320x at 16 kHz (20 ms steps),
and BASE has 12 Transformer blocks of width 768. conf/model/wav2vec2.yaml scales the
encoder to ECG-like rates (3 layers, 8x: ~22 ms steps at 360 Hz) and the width to CPUs.
The span length is clipped to a quarter of the encoded length on very short inputs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.quantizer import GumbelVectorQuantizer
from layers.encoders import pool
from models.ssl.base import RepresentationModel


class FeatureEncoder(nn.Module):
    def __init__(self, in_channels: int, conv_layers):
        super().__init__()
        blocks, ch = [], in_channels
        for i, (dim, k, s) in enumerate(conv_layers):
            layers = [nn.Conv1d(ch, dim, k, stride=s, padding=(k - s + 1) // 2, bias=False)]
            if i == 0:   # fairseq "default" mode: GroupNorm (one group per channel) on layer 1
                layers.append(nn.GroupNorm(dim, dim, affine=True))
            layers.append(nn.GELU())
            blocks.append(nn.Sequential(*layers))
            ch = dim
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # [B, T, C] -> [B, T', D]
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)


class ConvPositionalEmbedding(nn.Module):
    """Grouped convolution over time added to the input of the Transformer (relative
    positional information; kernel 128, 16 groups in the paper)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        std = math.sqrt(4 / (kernel * dim))
        nn.init.normal_(self.conv.weight, mean=0, std=std)
        nn.init.zeros_(self.conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(self.conv, name="weight", dim=2)
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2))
        if self.trim:
            h = h[..., :-1]
        return F.gelu(h).transpose(1, 2)


def cover_spans(is_start: torch.Tensor, span: int) -> torch.Tensor:
    """[B, S] bool span starts -> [B, S + span - 1] bool: step s is covered when a start lies
    in [s - span + 1, s] (a difference of running counts of the starts)."""
    s = is_start.size(1)
    before = F.pad(is_start.int().cumsum(dim=1), (span, span - 1))   # before[i]: starts <= i - span
    before[:, span + s:] = before[:, span + s - 1:span + s]
    return before[:, span:] - before[:, :s + span - 1] > 0


def span_mask(batch: int, length: int, mask_prob: float, span: int, min_spans: int = 2,
              device=None) -> torch.Tensor:
    """[B, T'] bool span mask: int(p T' + U[0,1)) starts (at least ``min_spans``) drawn without
    replacement from 0..T'-span, each masking ``span`` steps; then every row is cut to the
    smallest row count by unmasking random steps (equal counts per sequence). Every row
    draws at once, on ``device`` (no host round trip)."""
    span = max(1, min(span, length // 4 if length >= 4 else 1))
    starts_max = length - span + 1
    n = (mask_prob * length + torch.rand(batch, dtype=torch.float64, device=device)).long()
    n = n.clamp(min=min_spans).clamp(max=starts_max)
    # the first n of a random order of the possible starts
    order = torch.rand(batch, starts_max, device=device).argsort(dim=1)
    first_n = torch.arange(starts_max, device=device).view(1, -1) < n.unsqueeze(1)
    is_start = torch.zeros(batch, starts_max, dtype=torch.bool, device=device).scatter_(1, order, first_n)
    mask = cover_spans(is_start, span)
    # keep a random ``target`` of each row's masked steps
    target = mask.sum(dim=1).min()
    keys = torch.rand(batch, length, device=device).masked_fill(~mask, 2.0)
    rank = keys.argsort(dim=1).argsort(dim=1)
    return mask & (rank < target)


class Wav2Vec2(RepresentationModel):
    def __init__(self, in_channels: int, conv_layers=((128, 10, 2), (128, 3, 2), (128, 3, 2)),
                 d_model: int = 128, depth: int = 4, num_heads: int = 4, ffn_dim: int = 512,
                 dropout: float = 0.1, final_dim: int = 64, num_groups: int = 2,
                 num_vars: int = 320, max_temp: float = 2.0, min_temp: float = 0.5,
                 temp_decay: float = 0.999995, mask_prob: float = 0.065, mask_length: int = 10,
                 conv_pos: int = 128, conv_pos_groups: int = 16):
        super().__init__()
        self.feature_encoder = FeatureEncoder(in_channels, [tuple(c) for c in conv_layers])
        enc_dim = self.feature_encoder.out_dim
        self.layer_norm = nn.LayerNorm(enc_dim)
        self.post_extract_proj = nn.Linear(enc_dim, d_model)
        self.dropout_input = nn.Dropout(dropout)
        self.mask_emb = nn.Parameter(torch.empty(d_model).uniform_())
        self.mask_prob, self.mask_length = mask_prob, mask_length
        self.pos_conv = ConvPositionalEmbedding(d_model, conv_pos, conv_pos_groups)
        self.context_norm = nn.LayerNorm(d_model)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ffn_dim, dropout, activation="gelu",
                                           batch_first=True)   # post-norm, as BASE
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.quantizer = GumbelVectorQuantizer(enc_dim, final_dim, num_groups, num_vars,
                                               max_temp, min_temp, temp_decay)
        self.project_q = nn.Linear(final_dim, final_dim)
        self.final_proj = nn.Linear(d_model, final_dim)
        self.repr_dim = d_model

    def after_optimizer_step(self, step: int) -> None:
        self.quantizer.set_step(step)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(layer-normed features z, L2 penalty on the encoder output before the norm)."""
        raw = self.feature_encoder(torch.nan_to_num(x, nan=0.0))
        return self.layer_norm(raw), raw.float().pow(2).mean()

    def _context(self, h: torch.Tensor) -> torch.Tensor:
        h = self.context_norm(h + self.pos_conv(h))
        return self.transformer(h)

    def forward(self, batch: dict) -> dict:
        feats, features_pen = self._features(batch["x"])      # B x T' x C  (z, unmasked)
        h = self.dropout_input(self.post_extract_proj(feats))
        B, T, _ = h.shape
        mask = span_mask(B, T, self.mask_prob, self.mask_length, device=h.device)
        h = torch.where(mask.unsqueeze(-1), self.mask_emb.to(h.dtype), h)
        c = self.final_proj(self._context(h))
        qz = self.quantizer(feats, valid=mask)               # targets from unmasked features
        q = self.project_q(qz["q"])
        mask_idx = mask.nonzero()[:, 1].view(B, -1)          # equal counts per row
        return {"c": c, "q": q, "mask": mask, "mask_idx": mask_idx, "features_pen": features_pen,
                "diversity_loss": qz["diversity_loss"], "perplexity": qz["perplexity"],
                "code_perplexity": qz["code_perplexity"],
                "temperature": self.quantizer.temperature.clone()}

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """Context representations of the unmasked input (before final_proj):
        [B, D] pooled over encoded steps, or [B, T', D]."""
        h = self.post_extract_proj(self._features(x)[0])
        return pool(self._context(h), pooling)
