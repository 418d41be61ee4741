"""Deformable DETR (Zhu et al., "Deformable DETR: Deformable Transformers for End-to-End
Object Detection", ICLR 2021) in 1-D: beats of an ECG window as a set of intervals.

The paper replaces DETR's dense attention over one feature map by multi-scale deformable
attention (layers/deformable_attention.py): each query reads K sampled points per head and
level around its reference point. Kept as the paper's:
- a feature pyramid from the backbone's last stages (its C3-C5) plus one extra stride-2 conv
  level on the last stage (its C6), each brought to d_model by a conv + GroupNorm;
- the encoder: every token of every level is a query whose reference point is its own
  position; the query carries the normalised sine position ((i + 0.5) / T_l times 2π) plus a
  learned level embedding; post-norm layers, ReLU FFN;
- the decoder (the two-stage-free version): each learned query embedding is split into a
  query position and a learned decoder input; its reference point is sigmoid(Linear(query
  position)); self-attention among queries (position on queries and keys), then deformable
  cross-attention to every level around the reference, post-norm, no final LayerNorm;
- boxes predicted relative to the reference, sigmoid(delta + [logit(reference), 0]);
  ``iterative_refinement`` makes each decoder layer refine the previous layer's box,
  sigmoid(delta + logit(previous box)), the refined box being the next layer's reference
  interval (sampling offsets scale with its width), detached between layers, with one class
  and box head per layer (without refinement one shared pair);
- classification by a sigmoid per class (no no-object column), trained with the focal loss;
  class bias initialised to the prior 0.01, box heads to zero with the first width logit -2.

What is 1-D specific: the backbone is models/detr.py's Conv1d ResNet with five stride-2 stages
(strides 2 to 32), so the default pyramid has the paper's strides 8, 16, 32 and 64 (225, 113, 57
and 29 tokens for a 10 s window at 180 Hz; a stride-4 level would double the encoder's tokens and
its cost); a reference is a point on the time axis or an interval (centre, width); windows of a
batch share one length, so there are no valid ratios; sampling offsets start at ±(k + 1)
steps of each level, heads alternating past and future. Not reproduced: the paper's 0.1 lr
multiplier on the reference-point and sampling-offset layers (one optimizer lr here).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from layers.deformable_attention import (DeformableEncoderLayer, MultiScaleDeformableAttention1d,
                                         sine_position)
from models.base import BaseModel
from models.detr import BoxMLP, ConvBackbone1d, check_sizes, detections_of, final_and_aux


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The paper's clamped logit."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def group_norm(channels: int) -> nn.GroupNorm:
    """The paper's GroupNorm(32, d); fewer groups when d_model is not a multiple of 32."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


class DeformableDecoderLayer(nn.Module):
    """Self-attention among the queries, deformable cross-attention to every level around
    the query's reference, ReLU FFN; each added back and post-normed."""

    def __init__(self, d_model: int, num_heads: int, n_levels: int, n_points: int, d_ff: int,
                 dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = MultiScaleDeformableAttention1d(d_model, num_heads, n_levels, n_points)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, tgt, query_pos, reference, memory: list):
        qk = tgt + query_pos
        tgt = self.norm1(tgt + self.drop1(self.self_attn(qk, qk, tgt, need_weights=False)[0]))
        tgt = self.norm2(tgt + self.drop2(self.cross_attn(tgt + query_pos, reference, memory)))
        return self.norm3(tgt + self.drop3(self.ffn(tgt)))


class DeformableDETR(BaseModel):
    """forward(x [B, T, C]) -> {"logits" [B, N, K] (per-class sigmoid logits), "boxes" [B, N, 2]
    (centre, width) in (0, 1), "aux": [{"logits", "boxes"}] of the earlier decoder layers
    ([] without aux_loss)}. ``n_levels``: the last n_levels - 1 backbone stages plus one extra
    stride-2 level."""

    sigmoid_classes = True        # focal loss over K sigmoids, no no-object column

    def __init__(self, enc_in: int, seq_len: int, num_classes: int, d_model: int = 128,
                 num_queries: int = 64, enc_layers: int = 3, dec_layers: int = 3, num_heads: int = 4,
                 d_ff: int = 512, dropout: float = 0.1,
                 backbone_channels: Sequence[int] = (32, 64, 128, 128, 128), n_levels: int = 4,
                 n_points: int = 4, iterative_refinement: bool = False, aux_loss: bool = True):
        super().__init__()
        check_sizes("model", enc_in=enc_in, seq_len=seq_len, num_classes=num_classes, d_model=d_model,
                    num_queries=num_queries, dec_layers=dec_layers, num_heads=num_heads, d_ff=d_ff,
                    n_points=n_points)
        if enc_layers < 0:
            raise ValueError(f"model.enc_layers={enc_layers} must be >= 0")
        if d_model % num_heads:
            raise ValueError(f"model.d_model={d_model} must be divisible by model.num_heads={num_heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.dropout={dropout} must lie in [0, 1)")
        if not 2 <= n_levels <= len(backbone_channels) + 1:
            raise ValueError(f"model.n_levels={n_levels} must lie in [2, {len(backbone_channels) + 1}]: "
                             f"the last n_levels - 1 of the {len(backbone_channels)} backbone stages "
                             "plus one extra level")
        self.enc_in, self.seq_len, self.num_classes = int(enc_in), int(seq_len), int(num_classes)
        self.d_model, self.n_levels = int(d_model), int(n_levels)
        self.aux_loss, self.iterative_refinement = bool(aux_loss), bool(iterative_refinement)
        self.backbone = ConvBackbone1d(self.enc_in, backbone_channels)
        used = self.backbone.channels[-(self.n_levels - 1):]
        self.input_proj = nn.ModuleList(nn.Sequential(nn.Conv1d(c, d_model, 1), group_norm(d_model))
                                        for c in used)
        self.input_proj.append(nn.Sequential(nn.Conv1d(used[-1], d_model, 3, stride=2, padding=1),
                                             group_norm(d_model)))
        self.level_embed = nn.Parameter(torch.empty(self.n_levels, d_model))
        self.encoder = nn.ModuleList(
            DeformableEncoderLayer(d_model, num_heads, self.n_levels, n_points, d_ff, dropout)
            for _ in range(enc_layers))
        self.query_embed = nn.Embedding(num_queries, 2 * d_model)        # (query position, input)
        self.reference_points = nn.Linear(d_model, 1)
        self.decoder = nn.ModuleList(
            DeformableDecoderLayer(d_model, num_heads, self.n_levels, n_points, d_ff, dropout)
            for _ in range(dec_layers))
        self.class_embed, self.bbox_embed = self._heads(num_classes, d_model, dec_layers)
        self._reset_parameters()

    def _heads(self, num_classes: int, d_model: int, dec_layers: int):
        cls, box = nn.Linear(d_model, num_classes), BoxMLP(d_model, d_model, 2, 3)
        nn.init.constant_(cls.bias, -math.log((1 - 0.01) / 0.01))     # focal prior p = 0.01
        nn.init.zeros_(box.layers[-1].weight)
        nn.init.zeros_(box.layers[-1].bias)
        n = dec_layers if self.iterative_refinement else 1
        classes = nn.ModuleList(copy.deepcopy(cls) for _ in range(n))
        boxes = nn.ModuleList(copy.deepcopy(box) for _ in range(n))
        # the first box starts narrow; later refinement deltas start at zero
        nn.init.constant_(boxes[0].layers[-1].bias[1:], -2.0)
        return classes, boxes

    def _reset_parameters(self) -> None:
        for module in (self.encoder, self.decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention1d):
                m.reset_parameters()
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight)
            nn.init.zeros_(proj[0].bias)
        nn.init.xavier_uniform_(self.reference_points.weight)
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The level maps [B, T_l, d_model], finest first."""
        maps = self.backbone(x)[-(self.n_levels - 1):]
        levels = [proj(m) for proj, m in zip(self.input_proj, maps)]
        levels.append(self.input_proj[-1](maps[-1]))
        return [level.transpose(1, 2) for level in levels]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = self.pyramid(x)
        lengths = [level.shape[1] for level in levels]
        units, pos = [], []
        for i, n in enumerate(lengths):
            unit = (torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n
            units.append(unit)
            pos.append(sine_position(unit * 2 * math.pi, self.d_model) + self.level_embed[i])
        unit = torch.cat(units)
        # each token's own position, the same fraction of every level's map
        reference = unit.view(1, -1, 1, 1).expand(x.shape[0], -1, self.n_levels, 1)
        pos = torch.cat(pos).unsqueeze(0)
        tokens = torch.cat(levels, 1)
        for layer in self.encoder:
            tokens = layer(tokens, pos, reference, lengths, None)
        return list(tokens.split(lengths, dim=1))

    def forward(self, x: torch.Tensor) -> dict:
        if x.dim() != 3 or x.shape[-1] != self.enc_in:
            raise ValueError(f"DeformableDETR takes series [batch, time, {self.enc_in}]; "
                             f"got shape {tuple(x.shape)}")
        memory = self.encode(x)
        query_pos, tgt = self.query_embed.weight.unsqueeze(0).expand(x.shape[0], -1, -1).split(
            self.d_model, dim=-1)
        reference = self.reference_points(query_pos).sigmoid()           # B N 1: a point
        per_layer = []
        for i, layer in enumerate(self.decoder):
            tgt = layer(tgt, query_pos, reference, memory)
            head = min(i, len(self.bbox_embed) - 1)
            logit = inverse_sigmoid(reference)
            if logit.shape[-1] == 1:                  # a point: the width is predicted outright
                logit = F.pad(logit, (0, 1))
            boxes = (self.bbox_embed[head](tgt) + logit).sigmoid()
            per_layer.append({"logits": self.class_embed[head](tgt), "boxes": boxes})
            if self.iterative_refinement:
                reference = boxes.detach()            # the next layer's reference interval
        return final_and_aux(per_layer, self.aux_loss)

    @torch.no_grad()
    def detections(self, outputs: dict) -> dict:
        """score [B, N] (the highest class sigmoid), label [B, N] int64, centre [B, N], width [B, N]."""
        return detections_of(outputs, self.sigmoid_classes)
