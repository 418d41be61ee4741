"""Multi-scale deformable attention in 1-D (Zhu et al., "Deformable DETR: Deformable
Transformers for End-to-End Object Detection", ICLR 2021) and an encoder of it.

``MultiScaleDeformableAttention1d``: every query looks at a small, learned set of positions
instead of the whole sequence. For each head m, level l and point k a linear layer on the
query predicts a sampling offset Δ (in steps of level l) and a weight A (softmax over all
L x K points of the head):

    out_q = W_o  sum_m  sum_{l,k}  A_{mlqk} · W_v x_l(p_q,l + Δ_{mlqk})

where p_q,l is the query's reference point on level l, given normalised to [0, 1] over the
level's map (the paper's convention), and x_l(·) is the value map of level l read at a
fractional position by linear interpolation with zeros outside the map: the paper's bilinear
``grid_sample`` (align_corners=False, zero padding) on a height-1 map, so position u in [0, 1]
is the fractional step u·T_l - 1/2. A reference may also be an interval (centre, width), as
the paper's refined boxes: the offsets then scale with the width (Δ / K · width / 2), for
detectors that regress intervals on a continuous record.

``DeformableEncoder`` (registered as "deformable"): the paper's encoder on a feature pyramid of
the series. A convolutional stem gives level 0 at the input's resolution, each further level
halves it with a stride-2 convolution (the paper's C3-C5 of a ResNet plus a stride-2 C6); every
token of every level is a query whose reference point is its own position, and attends to
all levels. Post-norm layers with a ReLU feed-forward network (the paper's). The query carries
the paper's normalised sine position (the step's position over the series' observed extent,
times 2π) plus a learned level embedding; the values carry none. The output is level 0's
tokens, one per input step ([B, T, D]).

Choices where 2-D has no 1-D counterpart:
- the sampling-offset bias is initialised to ±(k + 1) steps, heads alternating between the
  past and the future (the paper spreads heads over 2-D directions at distances k + 1);
- the paper's per-level 1x1 conv + GroupNorm becomes a per-step LayerNorm, since a
  GroupNorm's statistics over time would let padded steps change observed ones;
- masks (True = observed): the observed extent of a series (last observed step + 1) plays the
  role of the paper's valid ratio, so reference points, offsets and positions are in steps of
  the observed series and padding at the end changes nothing; masked steps inside it (TS2Vec's
  timestamp masks) are zero values, as the paper's padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.step_mask import observed_steps


def sample_linear(values: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """values [N, C, T], locations [N, Q, P] in [0, 1] of the map -> [N, C, Q, P]: each map
    read at fractional step u·T - 1/2 by linear interpolation, zero outside (grid_sample on a
    height-1 map, align_corners=False, as the paper's code)."""
    grid = torch.stack([2 * locations - 1, torch.zeros_like(locations)], dim=-1)   # (x, y)
    return F.grid_sample(values.unsqueeze(2), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


class MultiScaleDeformableAttention1d(nn.Module):
    """forward(query [B, Q, D], reference_points, values [[B, T_l, D]] * n_levels,
    value_masks=None) -> [B, Q, D].

    reference_points: [B, Q, n_levels, 1] positions in [0, 1] of each level's map (or
    [B, Q, n_levels, 2] intervals (centre, width)); [B, Q] or [B, Q, 1] use the same position
    on every level. value_masks: one bool [B, T_l] per level, True = observed (False steps
    read as zeros)."""

    def __init__(self, d_model: int = 64, n_heads: int = 4, n_levels: int = 4, n_points: int = 4):
        super().__init__()
        for key, value in (("d_model", d_model), ("n_heads", n_heads), ("n_levels", n_levels),
                           ("n_points", n_points)):
            if int(value) < 1:
                raise ValueError(f"deformable attention: {key}={value} must be at least 1")
        if d_model % n_heads:
            raise ValueError(f"deformable attention: d_model={d_model} must be divisible by "
                             f"n_heads={n_heads}; change one of them")
        self.d_model, self.n_heads, self.n_levels, self.n_points = d_model, n_heads, n_levels, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: offsets start at fixed points around the reference
        (weights zero), attention uniform, value and output projections Xavier."""
        nn.init.zeros_(self.sampling_offsets.weight)
        direction = torch.tensor([1.0 if m % 2 == 0 else -1.0 for m in range(self.n_heads)])
        distance = torch.arange(1, self.n_points + 1, dtype=torch.float32)
        bias = direction.view(-1, 1, 1) * distance.view(1, 1, -1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.expand(-1, self.n_levels, -1).reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def sampling_locations(self, query: torch.Tensor, reference_points: torch.Tensor,
                           lengths: list[int]) -> torch.Tensor:
        """[B, Q, H, L, K] positions in [0, 1] of each level's map."""
        b, q, _ = query.shape
        h, lv, k = self.n_heads, self.n_levels, self.n_points
        ref = reference_points
        if ref.dim() == 2:
            ref = ref.unsqueeze(-1)
        if ref.dim() == 3:                                   # one position for every level
            ref = ref.unsqueeze(2).expand(-1, -1, lv, -1)
        if ref.shape[:3] != (b, q, lv) or ref.size(-1) not in (1, 2):
            raise ValueError(f"deformable attention: reference_points {tuple(reference_points.shape)} "
                             f"must be [B, Q], [B, Q, n_levels, 1] or [B, Q, n_levels, 2] with "
                             f"B={b}, Q={q}, n_levels={lv}")
        offsets = self.sampling_offsets(query).view(b, q, h, lv, k)
        centre = ref[..., 0].view(b, q, 1, lv, 1)
        if ref.size(-1) == 1:                # offsets in steps of each level
            size = torch.tensor(lengths, dtype=query.dtype, device=query.device)
            return centre + offsets / size.view(1, 1, 1, lv, 1)
        width = ref[..., 1].view(b, q, 1, lv, 1)
        return centre + offsets / k * width * 0.5

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, values: list,
                value_masks: list | None = None) -> torch.Tensor:
        if len(values) != self.n_levels:
            raise ValueError(f"deformable attention: got {len(values)} value maps for "
                             f"n_levels={self.n_levels}")
        b, q, _ = query.shape
        h, lv, k, dh = self.n_heads, self.n_levels, self.n_points, self.d_model // self.n_heads
        lengths = [v.size(1) for v in values]
        loc = self.sampling_locations(query, reference_points, lengths)         # B Q H L K
        weights = self.attention_weights(query).view(b, q, h, lv * k).softmax(-1)
        weights = weights.view(b, q, h, lv, k)
        out = query.new_zeros(b * h, dh, q)
        for level, value in enumerate(values):
            v = self.value_proj(value)
            if value_masks is not None and value_masks[level] is not None:
                v = v.masked_fill(~value_masks[level].to(torch.bool).unsqueeze(-1), 0.0)
            v = v.view(b, -1, h, dh).permute(0, 2, 3, 1).reshape(b * h, dh, -1)
            where = loc[:, :, :, level].permute(0, 2, 1, 3).reshape(b * h, q, k)
            sampled = sample_linear(v, where)                                    # BH dh Q K
            w = weights[:, :, :, level].permute(0, 2, 1, 3).reshape(b * h, 1, q, k)
            out = out + (sampled * w).sum(-1)
        out = out.view(b, h * dh, q).transpose(1, 2)
        return self.output_proj(out)


class DeformableEncoderLayer(nn.Module):
    """The paper's encoder layer: deformable self-attention, then a ReLU feed-forward
    network, each added back and followed by LayerNorm (post-norm)."""

    def __init__(self, d_model: int, n_heads: int, n_levels: int, n_points: int, d_ffn: int,
                 dropout: float):
        super().__init__()
        self.attn = MultiScaleDeformableAttention1d(d_model, n_heads, n_levels, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ffn), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ffn, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens, pos, reference_points, lengths, masks):
        values = list(tokens.split(lengths, dim=1))
        attended = self.attn(tokens + pos, reference_points, values, masks)
        tokens = self.norm1(tokens + self.dropout(attended))
        return self.norm2(tokens + self.dropout(self.ffn(tokens)))


def sine_position(position: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """The paper's sine embedding of normalised positions [B, Q] (already times 2π) -> [B, Q, dim]:
    sin and cos of position / temperature^(2i/dim), interleaved."""
    i = torch.arange(dim, dtype=position.dtype, device=position.device)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / dim)
    angle = position.unsqueeze(-1) / freq
    return torch.where(i % 2 == 0, angle.sin(), angle.cos())


class DeformableEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]; ``mask`` optional bool [B, T], True = observed.

    Defaults are the paper's (4 points per head and level, post-norm, ReLU, dropout 0.1,
    d_ffn = 4 d_model) at a CPU-sized width: d_model 32 (paper 256), 4 heads (paper 8), 3 levels
    (paper 4: a 126-step beat has only 16 steps at the fourth), 3 layers (paper 6)."""

    def __init__(self, in_channels: int, repr_dim: int = 64, d_model: int = 32, n_heads: int = 4,
                 n_levels: int = 3, n_points: int = 4, n_layers: int = 3, d_ffn: int = 128,
                 dropout: float = 0.1, stem_kernel: int = 7):
        super().__init__()
        for key, value in (("n_layers", n_layers), ("d_ffn", d_ffn), ("stem_kernel", stem_kernel),
                           ("n_levels", n_levels)):
            if int(value) < 1:
                raise ValueError(f"deformable encoder: {key}={value} must be at least 1")
        if stem_kernel % 2 == 0:
            raise ValueError(f"deformable encoder: stem_kernel={stem_kernel} must be odd so level 0 "
                             "keeps the input's steps aligned")
        self.n_levels, self.d_model = int(n_levels), int(d_model)
        self.stem = nn.Conv1d(in_channels, d_model, stem_kernel, padding=stem_kernel // 2)
        self.downsample = nn.ModuleList(nn.Conv1d(d_model, d_model, 3, stride=2, padding=1)
                                        for _ in range(self.n_levels - 1))
        self.level_norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(self.n_levels))
        self.level_embed = nn.Parameter(torch.empty(self.n_levels, d_model))
        nn.init.normal_(self.level_embed)
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(d_model, n_heads, self.n_levels, n_points, d_ffn, dropout)
            for _ in range(n_layers))
        self.out = nn.Linear(d_model, repr_dim) if d_model != repr_dim else nn.Identity()
        self.repr_dim = repr_dim

    def pyramid(self, x: torch.Tensor, observed: torch.Tensor, extent: torch.Tensor):
        """Level maps [B, T_l, D] and their masks: level 0 observed where x is, coarser
        levels over the series' observed extent (the halved length, rounded up)."""
        feats, masks = [], []
        h = self.stem(x.transpose(1, 2))
        for level in range(self.n_levels):
            if level:
                h = self.downsample[level - 1](F.relu(h))
            n = h.size(-1)
            if level == 0:
                m = observed
            else:
                valid = torch.div(extent + 2 ** level - 1, 2 ** level, rounding_mode="floor")
                m = torch.arange(n, device=x.device).unsqueeze(0) < valid.unsqueeze(1)
            h = h * m.unsqueeze(1).to(h.dtype)               # padding never leaks into a level
            feats.append(self.level_norms[level](h.transpose(1, 2)))
            masks.append(m)
        return feats, masks

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = x.size(1)
        x, observed = observed_steps(x, mask)
        steps = torch.arange(1, t + 1, device=x.device)
        extent = (observed * steps).amax(dim=1).clamp(min=1)         # last observed step + 1
        feats, masks = self.pyramid(x, observed, extent)
        lengths = [f.size(1) for f in feats]
        # each token's reference point: its own position over the observed extent, then
        # placed on every level's map (the paper's valid ratios)
        valid = torch.stack([m.sum(1) if i else extent for i, m in enumerate(masks)], 1)   # B L
        valid = valid.to(x.dtype).clamp(min=1)
        refs, pos = [], []
        for level, n in enumerate(lengths):
            centre = (torch.arange(n, device=x.device, dtype=x.dtype) + 0.5).unsqueeze(0)
            unit = centre / valid[:, level:level + 1]                            # B n
            refs.append(unit)
            pos.append(sine_position(unit * 2 * math.pi, self.d_model) + self.level_embed[level])
        unit = torch.cat(refs, 1)                                                # B Q
        ratio = valid / torch.tensor(lengths, dtype=x.dtype, device=x.device)   # B L
        reference_points = (unit.unsqueeze(-1) * ratio.unsqueeze(1)).unsqueeze(-1)
        pos = torch.cat(pos, 1)
        tokens = torch.cat(feats, 1)
        for layer in self.layers:
            tokens = layer(tokens, pos, reference_points, lengths, masks)
        return self.out(tokens[:, :t])
