"""Fusion of a waveform's per-step representations [B, T, D] with per-sample side
information [B, F] (a heartbeat's RR intervals, record metadata), the choices of the
multimodal-learning survey (Baltrusaitis et al., TPAMI 2019) and ViLT (Kim et al., ICML 2021):

- ``concat``: the pooled waveform vector and the side features concatenated before the head
  (feature-level fusion);
- ``early``: the side features repeated along time as extra input channels of the encoder
  (the encoder is built with them; see ``input_channels``);
- ``late``: a head on the waveform and a head on the side features, their class
  probabilities averaged (score fusion, as Two-Stream fuses its streams);
- ``cross``: every time step attends to the side features as tokens (cross-attention, one
  token per feature: its value times a learned embedding plus a learned feature embedding),
  residual and norm, then pooled;
- ``single_stream``: ViLT's single transformer over the concatenation of the waveform's
  tokens (the encoder's steps averaged over patches of ``patch_len``), the side tokens and a
  class token, each with a modality-type embedding; the class token goes to the head.

Every choice returns log-probabilities or logits that cross-entropy takes as logits
(``late`` returns the log of the averaged probabilities, which log-softmax leaves unchanged).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from layers.embed import sinusoid_table
from layers.encoders import pool

FUSIONS = ("concat", "early", "late", "cross", "single_stream")


def input_channels(fusion: str, in_channels: int, side_features: int) -> int:
    """Channels the encoder sees: early fusion adds the side features as channels."""
    return in_channels + side_features if fusion == "early" else in_channels


def side_as_channels(x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """x [B, T, C], side [B, F] -> [B, T, C + F] (early fusion)."""
    return torch.cat([x, side.to(x.dtype).unsqueeze(1).expand(-1, x.size(1), -1)], dim=-1)


class SideTokens(nn.Module):
    """[B, F] -> [B, F, D]: feature j's token is value_j * w_j + b_j (a numeric feature's
    embedding with one learned direction and offset per feature)."""

    def __init__(self, n_features: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, dim) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_features, dim))

    def forward(self, side: torch.Tensor) -> torch.Tensor:
        return side.to(self.weight.dtype).unsqueeze(-1) * self.weight + self.bias


class FusionHead(nn.Module):
    """Per-step waveform representations h [B, T, D] + side [B, F] -> class scores [B, K]."""

    def __init__(self, fusion: str, repr_dim: int, side_features: int, num_classes: int,
                 pooling: str = "mean", dropout: float = 0.0, n_heads: int = 4,
                 fusion_layers: int = 1, patch_len: int = 8):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"model.fusion={fusion} is not known; choose one of {', '.join(FUSIONS)}")
        if fusion in ("cross", "single_stream") and repr_dim % n_heads:
            raise ValueError(f"model.fusion={fusion}: repr_dim={repr_dim} must be divisible by "
                             f"model.fusion_heads={n_heads}")
        self.fusion, self.pooling, self.patch_len = fusion, pooling, int(patch_len)
        self.side_features = side_features
        self.dropout = nn.Dropout(dropout)
        width = repr_dim + (side_features if fusion == "concat" else 0)
        self.fc = nn.Linear(width, num_classes)
        if fusion == "late" and side_features:
            self.side_head = nn.Sequential(nn.Linear(side_features, repr_dim), nn.ReLU(),
                                           nn.Linear(repr_dim, num_classes))
        if fusion in ("cross", "single_stream") and side_features:
            self.side_tokens = SideTokens(side_features, repr_dim)
        if fusion == "cross" and side_features:
            self.attn = nn.MultiheadAttention(repr_dim, n_heads, dropout=dropout, batch_first=True)
            self.norm = nn.LayerNorm(repr_dim)
        if fusion == "single_stream":
            self.cls = nn.Parameter(torch.zeros(1, 1, repr_dim))
            self.type_embed = nn.Embedding(3, repr_dim)      # class token, waveform, side
            layer = nn.TransformerEncoderLayer(repr_dim, n_heads, 4 * repr_dim, dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.stream = nn.TransformerEncoder(layer, fusion_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(repr_dim)

    def forward(self, h: torch.Tensor, side: torch.Tensor | None, mask: torch.Tensor | None = None):
        if self.side_features and side is None:
            raise ValueError(f"this model fuses {self.side_features} side features but the batch "
                             "has no 'features'")
        if not self.side_features:
            return self.fc(self.dropout(pool(h, self.pooling, mask)))
        if self.fusion == "single_stream":
            return self.fc(self.dropout(self._single_stream(h, side, mask)))
        if self.fusion == "cross":
            tokens = self.side_tokens(side).to(h.dtype)
            h = self.norm(h + self.attn(h, tokens, tokens, need_weights=False)[0])
        pooled = pool(h, self.pooling, mask)
        if self.fusion == "concat":
            pooled = torch.cat([pooled, side.to(pooled.dtype)], dim=-1)
        logits = self.fc(self.dropout(pooled))
        if self.fusion == "late":
            probs = (logits.softmax(-1) + self.side_head(side.to(pooled.dtype)).softmax(-1)) / 2
            return probs.clamp(min=1e-12).log()
        return logits

    def _single_stream(self, h, side, mask):
        b, t, d = h.shape
        p = self.patch_len
        pad = (-t) % p
        keep = torch.ones(b, t, dtype=torch.bool, device=h.device) if mask is None else mask.to(torch.bool)
        w = F.pad(keep.to(h.dtype), (0, pad)).view(b, -1, p, 1)
        wave = (F.pad(h, (0, 0, 0, pad)).view(b, -1, p, d) * w).sum(2) / w.sum(2).clamp(min=1)
        wave_keep = w.sum(2).squeeze(-1) > 0                   # patches with an observed step
        n = wave.size(1)
        wave = wave + sinusoid_table(n, d, h.device).to(h.dtype) + self.type_embed.weight[1]
        side_tok = self.side_tokens(side).to(h.dtype) + self.type_embed.weight[2]
        cls = self.cls.expand(b, -1, -1) + self.type_embed.weight[0]
        tokens = torch.cat([cls, wave, side_tok], dim=1)
        ignore = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=h.device), ~wave_keep,
                            torch.zeros(b, side_tok.size(1), dtype=torch.bool, device=h.device)], 1)
        return self.norm(self.stream(tokens, src_key_padding_mask=ignore))[:, 0]

