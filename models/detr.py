"""DETR (Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020) in 1-D:
beats of a continuous ECG window found as a set of intervals (centre, width).

The paper: a CNN backbone, a 1x1 projection to d_model, a Transformer encoder over the
flattened feature map and a decoder that turns N learned object queries into N predictions at
once, each a class (K classes + "no object") and a box. Training matches the predictions to
the targets one to one (Hungarian, utils/losses/detr.py), so no anchors and no non-maximum
suppression are needed. Mechanisms kept as the paper's:
- fixed sine positional encodings added to queries and keys of every encoder layer (not to
  the values), and to the memory keys of every decoder cross-attention;
- a decoder input that starts at zeros, the learned object queries added to the queries and
  keys of its self-attention and to the queries of its cross-attention at every layer;
- post-norm layers (LayerNorm after each residual sum), ReLU feed-forward, dropout 0.1;
- one final decoder LayerNorm and one pair of prediction heads (linear class head with a
  no-object column, 3-layer MLP box head with a sigmoid) shared by every decoder layer, whose
  earlier outputs feed the auxiliary losses.

What is 1-D specific: the backbone is a small ResNet-style Conv1d stack trained from scratch
(the paper's frozen-BN ImageNet ResNet-50 has no ECG counterpart), four stride-2 stages for an
overall stride of 16; the sine encoding covers the one time axis with all d_model features
(2-D splits them between rows and columns), positions normalised over the map ((i + 1) / T
times 2π, the paper's normalised variant); a box is (centre, width) in fractions of the window.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from layers.deformable_attention import sine_position
from models.base import BaseModel


# ---------------------------------------------------------------------- shared parts
class BasicBlock1d(nn.Module):
    """ResNet's basic block in 1-D: two 3-tap conv-BN, the first with the stride, added to a
    (1x1 conv-BN when the shape changes) shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm1d(out_ch),
            nn.ReLU(), nn.Conv1d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm1d(out_ch))
        self.shortcut = (nn.Identity() if stride == 1 and in_ch == out_ch else nn.Sequential(
            nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm1d(out_ch)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ConvBackbone1d(nn.Module):
    """x [B, T, C] -> one map [B, channels[i], ceil(T / 2**(i+1))] per stage: a full-resolution
    7-tap stem, then a stride-2 basic block per stage (overall stride 2**len(channels))."""

    def __init__(self, in_channels: int, channels: Sequence[int] = (32, 64, 128, 128)):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f"model.backbone_channels={channels} must list at least one positive width")
        self.stem = nn.Sequential(nn.Conv1d(in_channels, channels[0], 7, padding=3, bias=False),
                                  nn.BatchNorm1d(channels[0]), nn.ReLU())
        widths = [channels[0], *channels]
        self.stages = nn.ModuleList(BasicBlock1d(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(x.transpose(1, 2))
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        return maps


class BoxMLP(nn.Module):
    """The paper's box head: ``num_layers`` linear layers, ReLU between them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


def detections_of(outputs: dict, sigmoid_classes: bool) -> dict:
    """The paper's post-processing, one candidate per query: class probabilities (softmax
    without the no-object column, or per-class sigmoids), score and label their maximum."""
    logits = outputs["logits"].float()
    prob = logits.sigmoid() if sigmoid_classes else logits.softmax(-1)[..., :-1]
    score, label = prob.max(-1)
    centre, width = outputs["boxes"].float().unbind(-1)
    return {"score": score, "label": label.long(), "centre": centre, "width": width}


def final_and_aux(per_layer: list[dict], aux_loss: bool) -> dict:
    """The last decoder layer's outputs, with the earlier layers' under "aux" (for the
    auxiliary decoding losses) or none."""
    return {**per_layer[-1], "aux": per_layer[:-1] if aux_loss else []}


def check_sizes(prefix: str, **sizes) -> None:
    for key, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"{prefix}.{key}={value} must be at least 1")


# ---------------------------------------------------------------------- transformer
class EncoderLayer(nn.Module):
    """Post-norm self-attention + FFN; the position is added to queries and keys only."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        qk = src + pos
        src = self.norm1(src + self.drop1(self.attn(qk, qk, src, need_weights=False)[0]))
        return self.norm2(src + self.drop2(self.ffn(src)))


class DecoderLayer(nn.Module):
    """Post-norm self-attention among the queries, cross-attention to the memory, FFN."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, tgt, query_pos, memory, pos):
        qk = tgt + query_pos
        tgt = self.norm1(tgt + self.drop1(self.self_attn(qk, qk, tgt, need_weights=False)[0]))
        attended = self.cross_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        tgt = self.norm2(tgt + self.drop2(attended))
        return self.norm3(tgt + self.drop3(self.ffn(tgt)))


# ---------------------------------------------------------------------- the detector
class DETR(BaseModel):
    """forward(x [B, T, C]) -> {"logits" [B, N, K + 1], "boxes" [B, N, 2] (centre, width) in
    (0, 1), "aux": [{"logits", "boxes"}] of the earlier decoder layers ([] without aux_loss)}."""

    sigmoid_classes = False       # softmax over K classes + no object (utils/losses/detr.py)

    def __init__(self, enc_in: int, seq_len: int, num_classes: int, d_model: int = 128,
                 num_queries: int = 64, enc_layers: int = 3, dec_layers: int = 3, num_heads: int = 4,
                 d_ff: int = 512, dropout: float = 0.1,
                 backbone_channels: Sequence[int] = (32, 64, 128, 128), aux_loss: bool = True):
        super().__init__()
        check_sizes("model", enc_in=enc_in, seq_len=seq_len, num_classes=num_classes, d_model=d_model,
                    num_queries=num_queries, dec_layers=dec_layers, num_heads=num_heads, d_ff=d_ff)
        if enc_layers < 0:
            raise ValueError(f"model.enc_layers={enc_layers} must be >= 0")
        if d_model % num_heads:
            raise ValueError(f"model.d_model={d_model} must be divisible by model.num_heads={num_heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.dropout={dropout} must lie in [0, 1)")
        self.enc_in, self.seq_len, self.num_classes = int(enc_in), int(seq_len), int(num_classes)
        self.d_model, self.aux_loss = int(d_model), bool(aux_loss)
        self.backbone = ConvBackbone1d(self.enc_in, backbone_channels)
        self.input_proj = nn.Conv1d(self.backbone.channels[-1], d_model, 1)
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff, dropout)
                                     for _ in range(enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, num_heads, d_ff, dropout)
                                     for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.class_embed = nn.Linear(d_model, self.num_classes + 1)      # last column: no object
        self.bbox_embed = BoxMLP(d_model, d_model, 2, 3)
        # the paper's Transformer initialisation: Xavier on every matrix
        for module in (self.encoder, self.decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def position(self, length: int, like: torch.Tensor) -> torch.Tensor:
        """The normalised sine encoding of ``length`` steps [1, length, d_model]."""
        steps = torch.arange(1, length + 1, dtype=like.dtype, device=like.device)
        return sine_position(steps / length * 2 * math.pi, self.d_model).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> dict:
        if x.dim() != 3 or x.shape[-1] != self.enc_in:
            raise ValueError(f"DETR takes series [batch, time, {self.enc_in}]; got shape {tuple(x.shape)}")
        src = self.input_proj(self.backbone(x)[-1]).transpose(1, 2)        # B S D
        pos = self.position(src.shape[1], x)          # the input's dtype: fp32 under autocast
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(x.shape[0], -1, -1)
        tgt = torch.zeros_like(query_pos)
        per_layer = []
        for layer in self.decoder:
            tgt = layer(tgt, query_pos, memory, pos)
            h = self.decoder_norm(tgt)
            per_layer.append({"logits": self.class_embed(h), "boxes": self.bbox_embed(h).sigmoid()})
        return final_and_aux(per_layer, self.aux_loss)

    @torch.no_grad()
    def detections(self, outputs: dict) -> dict:
        """score [B, N], label [B, N] int64, centre [B, N], width [B, N] of every query."""
        return detections_of(outputs, self.sigmoid_classes)
