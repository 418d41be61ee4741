"""Masked autoencoder (He et al., CVPR 2022) for 1-D signals.

x [B, T, C] is cut into N non-overlapping patches of ``patch_len`` steps (all channels of a
patch form one token, as ViT treats RGB; T is zero-padded to a multiple of patch_len).
Fixed sine-cosine positional embeddings are added to every patch; a random ``mask_ratio``
of the patches (0.75) is dropped per sample and the encoder sees only the visible ones.
A light decoder gets the encoded visible tokens plus a shared learned mask token at each
masked position (positional embeddings added again) and predicts every patch's values
with a final linear layer; the loss (utils.losses.mae.MAELoss) is the MSE on masked
patches only. For downstream use the encoder runs on all patches, unmasked.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.embed import sinusoid_table
from layers.encoders import pool
from models.ssl.base import RepresentationModel


def transformer(dim: int, depth: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> nn.Module:
    """Pre-norm ViT blocks (LayerNorm before attention and MLP, GELU)."""
    layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


def random_masking(batch: int, n: int, keep: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random subset of ``keep`` patches (MAE's shuffle-and-slice).
    Returns ids_keep [B, keep], ids_restore [B, N] and mask [B, N] (1 = masked)."""
    noise = torch.rand(batch, n, device=device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(batch, n, device=device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_shuffle[:, :keep], ids_restore, mask


class MAE(RepresentationModel):
    def __init__(self, in_channels: int, seq_len: int | None = None, patch_len: int = 16,
                 mask_ratio: float = 0.75, embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
                 decoder_dim: int = 64, decoder_depth: int = 2, decoder_heads: int = 4,
                 mlp_ratio: float = 4.0, max_patches: int = 1024):
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"model.mask_ratio must be in [0, 1), got {mask_ratio}")
        self.in_channels, self.patch_len, self.mask_ratio = in_channels, patch_len, mask_ratio
        patch_dim = patch_len * in_channels
        if seq_len is not None:
            max_patches = max(max_patches, math.ceil(seq_len / patch_len))
        self.patch_embed = nn.Linear(patch_dim, embed_dim)
        self.register_buffer("pos", sinusoid_table(max_patches, embed_dim), persistent=False)
        self.encoder = transformer(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("dec_pos", sinusoid_table(max_patches, decoder_dim), persistent=False)
        self.decoder = transformer(decoder_dim, decoder_depth, decoder_heads, mlp_ratio)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_dim)
        self.repr_dim = embed_dim

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, N, patch_len * C] (zero-padded at the end to N * patch_len)."""
        B, T, C = x.shape
        if C != self.in_channels:
            raise ValueError(f"MAE was built for {self.in_channels} channels, got x {tuple(x.shape)}")
        pad = (-T) % self.patch_len
        x = F.pad(torch.nan_to_num(x, nan=0.0), (0, 0, 0, pad))
        n = x.size(1) // self.patch_len
        if n > self.pos.size(0):
            raise ValueError(f"{n} patches exceed model.max_patches={self.pos.size(0)}; raise it")
        return x.reshape(B, n, self.patch_len * C)

    def _embed(self, patches: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(patches) + self.pos[: patches.size(1)]

    def forward(self, batch: dict) -> dict:
        patches = self.patchify(batch["x"])
        B, N, _ = patches.shape
        tokens = self._embed(patches)
        keep = max(1, int(N * (1 - self.mask_ratio)))
        ids_keep, ids_restore, mask = random_masking(B, N, keep, tokens.device)
        visible = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.size(-1)))
        latent = self.norm(self.encoder(visible))                        # encoder: visible only
        y = self.decoder_embed(latent)
        y = torch.cat([y, self.mask_token.expand(B, N - keep, -1)], dim=1)
        y = torch.gather(y, 1, ids_restore.unsqueeze(-1).expand(-1, -1, y.size(-1)))   # unshuffle
        y = self.decoder_norm(self.decoder(y + self.dec_pos[:N]))
        return {"pred": self.decoder_pred(y), "target": patches, "mask": mask}

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """All patches, no masking: [B, D] pooled over patches, or [B, N, D] per patch."""
        h = self.norm(self.encoder(self._embed(self.patchify(x))))
        return pool(h, pooling)
