"""The Multiway Transformer of BEiT-3 (Wang et al., "Image as a Foreign Language: BEiT
Pretraining for All Vision and Vision-Language Tasks", CVPR 2023) over the leads of a series.

``MultiwayBlock``: one self-attention module shared by every token, whatever its modality, and
a pool of feed-forward experts, one per modality; each token goes through its own modality's
expert. Pre-norm as BEiT-3's predecessor VLMo (the block's first LayerNorm and the attention
shared, each expert with its own LayerNorm and GELU MLP):

    h = x + Attn(LN(x))                      over all tokens of all modalities jointly
    y_i = h_i + FFN_{m(i)}(LN_{m(i)}(h_i))   m(i): token i's modality

A block built with ``fusion=True`` has a single expert for every token: BEiT-3's top layers,
whose vision-language expert fuses the modalities of a paired input.

``MultiwayEncoder`` (registered as "multiway"): the modalities are token streams of the series,
``modalities``:

- ``leads``: one stream per lead (channel): non-overlapping patches of ``patch_len`` steps of
  that lead, embedded by the lead's own linear layer (each modality its own embedding, as
  BEiT-3's patch and word embeddings) and sent to the lead's expert;
- ``time_frequency``: two streams, patches of the series (all channels) and patches of its
  spectrum (log(1 + |rFFT|) of every channel over the series' observed extent, frequency bins
  in place of steps): the single-lead case, where there is one lead only;
- ``auto`` (default): leads when the series has several channels, time_frequency for one.

Tokens carry the sinusoidal position of their patch within their stream (the same time patch
has the same position on every lead). After the last block, each time-aligned stream is spread
back over its patches' steps and the spectrum stream is averaged over its observed bands and
given to every step; the streams are concatenated per step and projected to ``repr_dim``.

Masks (True = observed): a patch takes part when any of its steps is observed; patches past a
series' end (and spectrum bands past its observed extent's) are left out of the attention as
keys, so padding at the end of a series changes none of its outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from layers.embed import sinusoid_table
from layers.step_mask import observed_steps

MODALITIES = ("auto", "leads", "time_frequency")


class SharedSelfAttention(nn.Module):
    """Multi-head self-attention over all tokens; ``key_mask`` bool [B, L], True = may be
    attended to."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"multiway: d_model={d_model} must be divisible by n_heads={n_heads}; "
                             "change one of them")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask.to(torch.bool).view(b, 1, 1, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Expert(nn.Module):
    """A modality expert: LayerNorm, then the GELU feed-forward network."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_ff), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(d_ff, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiwayBlock(nn.Module):
    """forward(x [B, L, D], modality long [L] (expert index per token), key_mask [B, L] or
    None) -> [B, L, D]."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_modalities: int,
                 dropout: float = 0.0, fusion: bool = False):
        super().__init__()
        if n_modalities < 1:
            raise ValueError(f"multiway: n_modalities={n_modalities} must be at least 1")
        self.norm = nn.LayerNorm(d_model)
        self.attn = SharedSelfAttention(d_model, n_heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.fusion = fusion
        self.experts = nn.ModuleList(Expert(d_model, d_ff, dropout)
                                     for _ in range(1 if fusion else n_modalities))

    def attend(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The shared half: x + Attn(LN(x)), the same weights for every modality."""
        return x + self.drop(self.attn(self.norm(x), key_mask))

    def route(self, h: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Each token through its own modality's expert (every token through the one expert of
        a fusion block)."""
        if self.fusion:
            return self.experts[0](h)
        out = torch.zeros_like(h)
        for index, expert in enumerate(self.experts):
            tokens = (modality == index).nonzero().squeeze(1)
            if tokens.numel():
                out = out.index_copy(1, tokens, expert(h.index_select(1, tokens)))
        return out

    def forward(self, x: torch.Tensor, modality: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.attend(x, key_mask)
        return h + self.route(h, modality)


def patches(x: torch.Tensor, patch_len: int) -> torch.Tensor:
    """[B, T, C] -> [B, ceil(T / P), P * C], the last patch zero-filled."""
    b, t, c = x.shape
    x = F.pad(x, (0, 0, 0, (-t) % patch_len))
    return x.reshape(b, -1, patch_len * c)


def spectrum(x: torch.Tensor, extent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log(1 + |rFFT|) of each series over its own observed extent: ([B, T // 2 + 1, C],
    bool [B, T // 2 + 1] True where the band exists for that series)."""
    b, t, c = x.shape
    out = x.new_zeros(b, t // 2 + 1, c)
    for length in extent.unique().tolist():
        rows = (extent == length).nonzero().squeeze(1)
        spec = torch.fft.rfft(x[rows, :length], dim=1, norm="ortho").abs()
        out[rows, :spec.size(1)] = torch.log1p(spec)
    bands = torch.arange(t // 2 + 1, device=x.device).unsqueeze(0) < (extent // 2 + 1).unsqueeze(1)
    return out, bands


class MultiwayEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]; ``mask`` optional bool [B, T], True = observed.

    Defaults: BEiT-3's block (pre-norm, GELU, d_ff = 4 d_model, top layers with a fusion
    expert) at a CPU-sized width: d_model 64 (BEiT-3 base 768), 4 layers (base 12), of which
    the top 1 fuses (BEiT-3: the top 3 of its deeper stack)."""

    def __init__(self, in_channels: int, repr_dim: int = 64, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 4, d_ff: int | None = None, dropout: float = 0.1,
                 patch_len: int = 4, modalities: str = "auto", fusion_layers: int = 1):
        super().__init__()
        if modalities not in MODALITIES:
            raise ValueError(f"multiway: modalities={modalities!r} is not one of "
                             f"{', '.join(MODALITIES)}")
        for key, value in (("n_layers", n_layers), ("patch_len", patch_len)):
            if int(value) < 1:
                raise ValueError(f"multiway: {key}={value} must be at least 1")
        if not 0 <= fusion_layers <= n_layers:
            raise ValueError(f"multiway: fusion_layers={fusion_layers} must be between 0 and "
                             f"n_layers={n_layers}")
        if modalities == "auto":
            modalities = "leads" if in_channels > 1 else "time_frequency"
        self.modalities, self.patch_len, self.d_model = modalities, int(patch_len), int(d_model)
        n_streams = in_channels if modalities == "leads" else 2
        width = self.patch_len * (1 if modalities == "leads" else in_channels)
        self.embed = nn.ModuleList(nn.Linear(width, d_model) for _ in range(n_streams))
        d_ff = int(d_ff or 4 * d_model)
        self.blocks = nn.ModuleList(
            MultiwayBlock(d_model, n_heads, d_ff, n_streams, dropout,
                          fusion=i >= n_layers - fusion_layers) for i in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(n_streams * d_model, repr_dim)
        self.repr_dim = repr_dim

    def streams(self, x: torch.Tensor, observed: torch.Tensor, extent: torch.Tensor):
        """Per stream: (tokens [B, N_s, P * width], key mask [B, N_s], time-aligned or not)."""
        p = self.patch_len
        step_patches = patches(observed.unsqueeze(-1).to(x.dtype), p).amax(-1) > 0
        if self.modalities == "leads":
            return [(patches(x[..., c:c + 1], p), step_patches, True) for c in range(x.size(-1))]
        spec, bands = spectrum(x, extent)
        band_patches = patches(bands.unsqueeze(-1).to(x.dtype), p).amax(-1) > 0
        return [(patches(x, p), step_patches, True), (patches(spec, p), band_patches, False)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = x.size(1)
        x, observed = observed_steps(x, mask)
        steps = torch.arange(1, t + 1, device=x.device)
        extent = (observed * steps).amax(dim=1).clamp(min=1)         # last observed step + 1
        streams = self.streams(x, observed, extent)
        tokens, masks, modality = [], [], []
        for index, (raw, keep, _) in enumerate(streams):
            n = raw.size(1)
            tokens.append(self.embed[index](raw) + sinusoid_table(n, self.d_model, x.device))
            masks.append(keep)
            modality.append(torch.full((n,), index, dtype=torch.long, device=x.device))
        h, key_mask, modality = torch.cat(tokens, 1), torch.cat(masks, 1), torch.cat(modality)
        key_mask[:, 0] |= ~key_mask.any(1)     # a series with nothing observed still has a key
        for block in self.blocks:
            h = block(h, modality, key_mask)
        h = self.norm(h)
        per_step = []
        for (_, keep, aligned), part in zip(streams, h.split([s[0].size(1) for s in streams], 1)):
            if aligned:
                per_step.append(part.repeat_interleave(self.patch_len, dim=1)[:, :t])
            else:
                w = keep.unsqueeze(-1).to(part.dtype)
                summary = (part * w).sum(1) / w.sum(1).clamp(min=1)
                per_step.append(summary.unsqueeze(1).expand(-1, t, -1))
        return self.out(torch.cat(per_step, -1))
