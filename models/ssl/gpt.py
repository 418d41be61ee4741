"""GPT (Radford et al. 2018, "Improving Language Understanding by Generative Pre-Training") on
patches of a series: generative pretraining by next-patch prediction.

Tokens. x [B, T, C] is cut into N non-overlapping patches of ``patch_len`` steps (all channels
of a patch form one token, as in models/ssl/mae.py; T is zero-padded to a multiple of
patch_len). A linear patch embedding plays the part of GPT's token embedding; learned position
embeddings are added, then dropout.

Decoder (layers/gpt_decoder.py). GPT-1's block, post-norm as in GPT-1 (GPT-2 later moved the
LayerNorm before each sub-layer): masked (causal) multi-head self-attention, then an MLP applied
at each position with GELU (GPT-1's tanh approximation), each added to its input and followed
by LayerNorm. Dropout (0.1) on the embeddings, the attention weights and both residual branches;
weights drawn from N(0, 0.02), biases zero. The causal mask lets position i attend to positions
<= i only.

Objective. A linear head maps the state at position i to a prediction of patch i + 1; the loss
(utils/losses/gpt.py) is the MSE against the next patch's values over positions 0..N-2, counting
observed values only (not NaN, not the zero padding of the last patch).

What differs from text GPT, and why: values are continuous, so the vocabulary softmax (and
its log-likelihood) becomes a linear regression head with squared error, the Gaussian
log-likelihood up to constants; the head is not tied to the input embedding, which is a linear
map of values rather than a lookup table; the context is one window (a heartbeat, a UCR
series) rather than a stream of 512 tokens cut from books.

Representations (``embed`` / ``encode``): the decoder on all patches (``encode`` in eval mode,
without dropout). "last" is the state of the last patch holding an observed value, the only one
that has seen the whole series (GPT-1 classifies from the final token's state); "max" / "mean"
pool over the patches holding an observed value; None gives the per-patch states
[B, N, d_model].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.encoders import pool
from layers.gpt_decoder import GPTDecoder, init_gpt
from models.ssl.base import RepresentationModel


class GPT(RepresentationModel):
    def __init__(self, in_channels: int, seq_len: int | None = None, patch_len: int = 6,
                 d_model: int = 128, depth: int = 4, num_heads: int = 4, d_ff: int = 512,
                 dropout: float = 0.1, max_patches: int = 512, encode_batch_size: int = 256):
        super().__init__()
        if patch_len < 1:
            raise ValueError(f"model.patch_len must be >= 1, got {patch_len}")
        self.in_channels, self.patch_len = in_channels, patch_len
        self.encode_batch_size = encode_batch_size
        if seq_len is not None:
            max_patches = max(max_patches, math.ceil(seq_len / patch_len))
        self.max_patches = max_patches
        patch_dim = patch_len * in_channels
        self.patch_embed = nn.Linear(patch_dim, d_model)
        self.position = nn.Embedding(max_patches, d_model)
        self.drop = nn.Dropout(dropout)
        self.decoder = GPTDecoder(d_model, depth, num_heads, d_ff, dropout)
        self.head = nn.Linear(d_model, patch_dim)
        self.repr_dim = d_model
        init_gpt(self)

    def patchify(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, C] -> (patches [B, N, patch_len * C], observed bool of the same shape).
        Unobserved values (NaN, or steps where ``keep`` [B, T] is False) and the zero padding
        that makes T a multiple of patch_len enter as 0 and count as not observed."""
        B, T, C = x.shape
        if C != self.in_channels:
            raise ValueError(f"GPT was built for {self.in_channels} channels, got x {tuple(x.shape)}")
        observed = ~torch.isnan(x)
        if keep is not None:
            observed = observed & keep.to(device=x.device, dtype=torch.bool).unsqueeze(-1)
        pad = (-T) % self.patch_len
        x = F.pad(torch.where(observed, x, torch.zeros_like(x)), (0, 0, 0, pad))
        observed = F.pad(observed, (0, 0, 0, pad), value=False)
        n = x.size(1) // self.patch_len
        if n > self.max_patches:
            raise ValueError(f"{n} patches of {self.patch_len} steps exceed model.max_patches="
                             f"{self.max_patches} learned positions; raise it or model.patch_len")
        return x.reshape(B, n, -1), observed.reshape(B, n, -1)

    def decode(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches [B, N, P] -> causal states [B, N, d_model] (state i sees patches <= i)."""
        n = patches.size(1)
        return self.decoder(self.drop(self.patch_embed(patches) + self.position.weight[:n]))

    def forward(self, batch: dict) -> dict:
        patches, observed = self.patchify(batch["x"])
        if patches.size(1) < 2:
            raise ValueError(f"next-patch prediction needs at least 2 patches; series of "
                             f"{batch['x'].size(1)} steps give {patches.size(1)} of "
                             f"model.patch_len={self.patch_len}: lower model.patch_len")
        h = self.decode(patches)
        # state i predicts patch i + 1; the last state has no next patch
        return {"pred": self.head(h[:, :-1]), "target": patches[:, 1:], "observed": observed[:, 1:]}

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """[B, D] pooled over the patches holding an observed value ("last": the last such
        patch's state), or [B, N, D] per patch with pooling=None."""
        keep = None if mask is None else torch.as_tensor(mask)
        patches, observed = self.patchify(x, keep)
        h = self.decode(patches)
        seen = observed.any(dim=-1)                                   # [B, N]
        if pooling != "last":
            return pool(h, pooling, seen)
        steps = torch.arange(h.size(1), device=h.device).expand_as(seen)
        last = torch.where(seen, steps, -1).amax(dim=1)
        last = torch.where(last < 0, h.size(1) - 1, last)           # nothing observed: the end
        return h[torch.arange(h.size(0), device=h.device), last]
