"""SAM (Kirillov et al., "Segment Anything", ICCV 2023) in 1-D: promptable segmentation of a long
ECG window. Given a window and prompts (points, an interval), the model returns several
candidate masks over time - e.g. the rhythm episode (atrial fibrillation, bigeminy) holding the
prompt point - each with a predicted IoU.

The paper's three parts, with its mechanisms:
- image encoder (``encode``, run once per window): a heavy encoder gives an embedding
  [B, S, D] that every prompt of the window reuses, followed by the paper's neck (1x1 conv,
  LayerNorm, 3-tap conv, LayerNorm over channels).
- prompt encoder: a point is the random Fourier-feature encoding of its position (a fixed
  Gaussian matrix, scale 1, kept as a buffer as the paper's ``PositionEmbeddingRandom``) plus a
  learned embedding of its label (1 foreground, 0 background); a padding point (label -1) has
  its position dropped and carries only the learned "not a point" embedding. An interval
  (start, end) is the paper's box: two corner points, each with its own learned embedding;
  a row with NaN has no interval and gets two "not a point" tokens. Without any interval one
  padding point is appended, as the paper does when no box is given. Padding tokens are
  attended to like the others (the paper masks nothing): the model learns to read them as "no
  prompt here". There is no dense (mask) prompt: the learned "no mask" embedding is added to
  every image token, as the paper does when no mask is given.
- mask decoder (``decode``): output tokens (a learned IoU token and num_masks + 1 mask tokens)
  concatenated with the prompt tokens run through the paper's two-way transformer (per layer:
  token self-attention, token->image cross-attention, MLP on the tokens, image->token
  cross-attention; post-norm; the prompt tokens' own embeddings and the image positional
  encoding re-added to queries and keys at every attention, none in the first self-attention;
  cross-attention at half width; a final token->image attention). The image embedding is
  upscaled 4x by two transposed convolutions; each mask token, through its own 3-layer MLP
  (a hypernetwork), gives weights dotted with every upscaled position: mask logits. The IoU
  token through a 3-layer MLP gives a predicted IoU per mask.

Ambiguity, as the paper: mask token 0 is the single output used when several prompts leave no
ambiguity; tokens 1..num_masks are the candidates for an ambiguous prompt (one point).
``multimask=None`` applies the paper's rule (candidates when every row holds at most one point
and no interval), True / False force it.

What is 1-D specific: the paper's MAE-pretrained ViT-H on 16-px patches has no ECG counterpart,
so the encoder is a Conv1d ResNet from scratch (overall stride 16, one token per 16 steps)
followed by pre-norm Transformer blocks with a fixed sine encoding of the token index (the
ViT's absolute positions; windowed and relative attention are left out at this length).
Positions are fractions of the window: a point or corner at step t is (t + 0.5) / W, image
token i is at the centre of its 16 steps, (16 i + 8) / W, so a position encodes the same
whatever the window's length. The Gaussian matrix is [1, D / 2] (the paper's [2, D / 2]).
Masks come at stride 4 and are interpolated (linear, align_corners=False) to the padded
length 16 S and cropped to W, as the paper crops its padded 1024 x 1024 masks.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from layers.deformable_attention import sine_position
from models.base import BaseModel
from models.detr import BoxMLP as MLP  # the paper's MLP: linear layers, ReLU between
from models.detr import ConvBackbone1d, check_sizes


class ChannelNorm(nn.LayerNorm):
    """The paper's LayerNorm2d in 1-D: LayerNorm over the channels of [B, C, T] at each step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


# ---------------------------------------------------------------------- image encoder
class ImageEncoder1d(nn.Module):
    """x [B, W, C] -> [B, ceil(W / stride), D]: conv backbone, 1x1 projection, fixed sine
    position, pre-norm Transformer blocks (GELU, as the ViT), the paper's neck."""

    def __init__(self, enc_in: int, d_model: int, channels: Sequence[int], layers: int,
                 num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.backbone = ConvBackbone1d(enc_in, channels)
        self.stride = 2 ** len(self.backbone.channels)
        self.proj = nn.Conv1d(self.backbone.channels[-1], d_model, 1)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(layers))
        self.neck = nn.Sequential(nn.Conv1d(d_model, d_model, 1, bias=False), ChannelNorm(d_model),
                                  nn.Conv1d(d_model, d_model, 3, padding=1, bias=False),
                                  ChannelNorm(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.backbone(x)[-1]).transpose(1, 2)                  # B S D
        index = torch.arange(h.shape[1], dtype=x.dtype, device=x.device)     # fp32 under autocast
        h = h + sine_position(index, h.shape[-1])
        for block in self.blocks:
            h = block(h)
        return self.neck(h.transpose(1, 2)).transpose(1, 2)


# ---------------------------------------------------------------------- prompt encoder
class PromptEncoder1d(nn.Module):
    """Sparse prompts -> tokens [B, P + 2 (interval) or P + 1 (none), D]; ``fourier`` also
    encodes the image tokens' positions, so prompts and image share one frame."""

    def __init__(self, d_model: int):
        super().__init__()
        # the paper's random Fourier features: a fixed N(0, 1) matrix, saved with the model
        self.register_buffer("gaussian", torch.randn(d_model // 2))
        self.label_embed = nn.Embedding(2, d_model)        # 0 background, 1 foreground
        self.corner_embed = nn.Embedding(2, d_model)       # interval start, end
        self.not_a_point = nn.Embedding(1, d_model)
        self.no_mask = nn.Embedding(1, d_model)            # dense embedding: no mask prompt

    def fourier(self, position: torch.Tensor) -> torch.Tensor:
        """position [...] in [0, 1] of the window -> [..., D]: sin, cos of 2π (2p - 1) g."""
        # an elementwise product, not a matmul, so autocast keeps it in fp32
        angle = 2 * math.pi * (2 * position.float().unsqueeze(-1) - 1) * self.gaussian
        return torch.cat([angle.sin(), angle.cos()], dim=-1)

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """points [B, P] in [0, 1], labels [B, P] (1, 0, -1 padding) -> [B, P, D]."""
        pad = (labels == -1).unsqueeze(-1)
        pe = self.fourier(points.masked_fill(labels == -1, 0.0))
        real = pe + self.label_embed(labels.clamp(min=0))
        return torch.where(pad, self.not_a_point.weight, real)

    def embed_interval(self, interval: torch.Tensor) -> torch.Tensor:
        """interval [B, 2] (start, end) in [0, 1], NaN rows = none -> [B, 2, D]."""
        none = interval.isnan().any(-1)[:, None, None]
        corners = self.fourier(interval.nan_to_num(0.0)) + self.corner_embed.weight
        return torch.where(none, self.not_a_point.weight, corners)

    def forward(self, points: torch.Tensor, labels: torch.Tensor,
                interval: torch.Tensor | None) -> torch.Tensor:
        tokens = self.embed_points(points, labels)
        if interval is None:       # the paper pads a prompt without a box with one padding point
            extra = self.not_a_point.weight.expand(len(tokens), 1, -1)
        else:
            extra = self.embed_interval(interval)
        return torch.cat([tokens, extra.to(tokens.dtype)], dim=1)


# ---------------------------------------------------------------------- two-way transformer
class Attention(nn.Module):
    """The paper's attention: q, k, v projected to D / downsample_rate, split in heads, scaled
    dot-product softmax, projected back to D."""

    def __init__(self, d_model: int, num_heads: int, downsample_rate: int = 1):
        super().__init__()
        inner = d_model // downsample_rate
        self.num_heads = num_heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, inner) for _ in range(3))
        self.out_proj = nn.Linear(inner, d_model)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b = q.shape[0]
        heads = lambda t: t.reshape(b, t.shape[1], self.num_heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(heads(self.q_proj(q)), heads(self.k_proj(k)),
                                             heads(self.v_proj(v)))
        return self.out_proj(out.transpose(1, 2).reshape(b, q.shape[1], -1))


class TwoWayBlock(nn.Module):
    """One layer of the paper's two-way transformer (post-norm, ReLU MLP)."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, skip_first_pe: bool):
        super().__init__()
        self.self_attn = Attention(d_model, num_heads)
        self.token_to_image = Attention(d_model, num_heads, downsample_rate=2)
        self.image_to_token = Attention(d_model, num_heads, downsample_rate=2)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(4))
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:     # first layer: the tokens are their own embeddings, no residual
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norms[0](queries)
        k = keys + key_pe
        queries = self.norms[1](queries + self.token_to_image(queries + query_pe, k, keys))
        queries = self.norms[2](queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norms[3](keys + self.image_to_token(keys + key_pe, q, queries))
        return queries, keys


class TwoWayTransformer1d(nn.Module):
    """(image [B, S, D], image_pe [B, S, D], tokens [B, N, D]) -> (tokens, image) updated."""

    def __init__(self, d_model: int, depth: int, num_heads: int, d_ff: int):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(d_model, num_heads, d_ff, skip_first_pe=i == 0)
                                    for i in range(depth))
        self.final_attn = Attention(d_model, num_heads, downsample_rate=2)
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, image, image_pe, tokens):
        queries, keys = tokens, image
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, image_pe)
        attended = self.final_attn(queries + tokens, keys + image_pe, keys)
        return self.final_norm(queries + attended), keys


# ---------------------------------------------------------------------- mask decoder
class MaskDecoder1d(nn.Module):
    """-> masks [B, num_masks + 1, 4 S] (logits at stride 4 of the tokens), iou [B, num_masks + 1]."""

    def __init__(self, d_model: int, num_masks: int, depth: int, num_heads: int, d_ff: int):
        super().__init__()
        self.num_mask_tokens = num_masks + 1        # token 0: the single-output mask
        self.iou_token = nn.Embedding(1, d_model)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d_model)
        self.transformer = TwoWayTransformer1d(d_model, depth, num_heads, d_ff)
        self.upscale = nn.Sequential(
            nn.ConvTranspose1d(d_model, d_model // 4, 2, stride=2), ChannelNorm(d_model // 4), nn.GELU(),
            nn.ConvTranspose1d(d_model // 4, d_model // 8, 2, stride=2), nn.GELU())
        self.hypernets = nn.ModuleList(MLP(d_model, d_model, d_model // 8, 3)
                                       for _ in range(self.num_mask_tokens))
        self.iou_head = MLP(d_model, d_model, self.num_mask_tokens, 3)

    def forward(self, image, image_pe, sparse, dense):
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight])
        tokens = torch.cat([out_tokens.expand(len(sparse), -1, -1).to(sparse.dtype), sparse], dim=1)
        hs, image = self.transformer(image + dense, image_pe, tokens)
        upscaled = self.upscale(image.transpose(1, 2))                       # B D/8 4S
        mask_out = hs[:, 1:1 + self.num_mask_tokens]
        hyper = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(self.hypernets)], dim=1)
        return hyper @ upscaled, self.iou_head(hs[:, 0])


# ---------------------------------------------------------------------- the model
class SAM1d(BaseModel):
    """forward(x [B, W, C], points [B, P], point_labels [B, P], interval [B, 2] | None,
    multimask=None) -> {"masks": [B, M, W] logits, "iou": [B, M]}, M = num_masks with
    multimask, else 1. ``encode`` + ``decode`` split it, to prompt one window many times."""

    def __init__(self, enc_in: int, seq_len: int, d_model: int = 128,
                 backbone_channels: Sequence[int] = (32, 64, 128, 128), encoder_layers: int = 2,
                 num_heads: int = 4, d_ff: int = 512, decoder_layers: int = 2, num_masks: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        check_sizes("model", enc_in=enc_in, seq_len=seq_len, d_model=d_model, num_heads=num_heads,
                    d_ff=d_ff, decoder_layers=decoder_layers, num_masks=num_masks)
        if encoder_layers < 0:
            raise ValueError(f"model.encoder_layers={encoder_layers} must be >= 0")
        if d_model % 8 or (d_model // 2) % num_heads:
            raise ValueError(f"model.d_model={d_model} must be a multiple of 8 (the upscaled masks "
                             f"have d_model / 8 channels) and d_model / 2 a multiple of "
                             f"model.num_heads={num_heads} (the half-width cross-attention)")
        if len(backbone_channels) < 2:
            raise ValueError(f"model.backbone_channels={list(backbone_channels)} needs at least two "
                             "stages: the decoder upscales 4x back towards the steps")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.dropout={dropout} must lie in [0, 1)")
        self.enc_in, self.seq_len, self.d_model = int(enc_in), int(seq_len), int(d_model)
        self.num_masks = int(num_masks)
        self.image_encoder = ImageEncoder1d(self.enc_in, d_model, backbone_channels, encoder_layers,
                                            num_heads, d_ff, dropout)
        self.stride = self.image_encoder.stride
        self.prompt_encoder = PromptEncoder1d(d_model)
        self.mask_decoder = MaskDecoder1d(d_model, self.num_masks, decoder_layers, num_heads, d_ff)

    # ------------------------------------------------------------------ the two halves
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, W, C] -> the window's embedding [B, ceil(W / 16), D]."""
        if x.dim() != 3 or x.shape[-1] != self.enc_in:
            raise ValueError(f"SAM1d takes series [batch, time, {self.enc_in}]; got shape {tuple(x.shape)}")
        return self.image_encoder(x)

    def decode(self, embedding: torch.Tensor, points: torch.Tensor, point_labels: torch.Tensor,
               interval: torch.Tensor | None = None, multimask: bool | None = None,
               length: int | None = None) -> dict:
        """embedding [B or 1, S, D], points [B, P] in [0, 1], point_labels [B, P] (1 foreground,
        0 background, -1 padding), interval [B, 2] (NaN rows: none) or None; ``length`` the
        window's W (default seq_len). -> {"masks": [B, M, W] logits, "iou": [B, M]}."""
        b, s = len(points), embedding.shape[1]
        length = self._length(s, length)
        self._check_prompts(embedding, points, point_labels, interval)
        if multimask is None:                          # the paper's rule: one point is ambiguous
            many = (point_labels != -1).sum(1) > 1
            if interval is not None:
                many = many | ~interval.isnan().any(-1)
            multimask = not bool(many.any())
        sparse = self.prompt_encoder(points, point_labels, interval)
        centres = (self.stride * torch.arange(s, device=embedding.device) + self.stride / 2) / length
        image_pe = self.prompt_encoder.fourier(centres).expand(b, -1, -1)
        dense = self.prompt_encoder.no_mask.weight
        masks, iou = self.mask_decoder(embedding.expand(b, -1, -1), image_pe, sparse, dense)
        chosen = slice(1, None) if multimask else slice(0, 1)
        masks = F.interpolate(masks[:, chosen], size=self.stride * s, mode="linear", align_corners=False)
        return {"masks": masks[..., :length], "iou": iou[:, chosen]}

    def forward(self, x: torch.Tensor, points: torch.Tensor, point_labels: torch.Tensor,
                interval: torch.Tensor | None = None, multimask: bool | None = None) -> dict:
        return self.decode(self.encode(x), points, point_labels, interval, multimask, x.shape[1])

    # ------------------------------------------------------------------ checks
    def _length(self, s: int, length: int | None) -> int:
        length = self.seq_len if length is None else int(length)
        if -(-length // self.stride) != s:
            raise ValueError(f"an embedding of {s} tokens comes from a window of {self.stride * (s - 1) + 1}"
                             f"..{self.stride * s} steps, not {length}: pass decode(..., length=W)")
        return length

    @staticmethod
    def _check_prompts(embedding, points, labels, interval) -> None:
        b = len(points)
        if points.dim() != 2 or labels.shape != points.shape:
            raise ValueError(f"points and point_labels must both be [batch, P]; got shapes "
                             f"{tuple(points.shape)} and {tuple(labels.shape)}")
        if embedding.shape[0] not in (1, b):
            raise ValueError(f"an embedding of {embedding.shape[0]} windows cannot serve {b} prompts")
        if ((labels < -1) | (labels > 1)).any():
            raise ValueError("point_labels take 1 (foreground), 0 (background) or -1 (padding)")
        if interval is not None and interval.shape != (b, 2):
            raise ValueError(f"interval must be [batch, 2] (start, end); got shape {tuple(interval.shape)}")
