"""A classifier on any encoder of layers/encoders.py: the model= configs of the backbones.

x [B, T, C] -> encoder -> [B, T, D] -> fusion with the per-sample side features when the data
has them (a heartbeat's RR intervals; ``fusion``: concat, early, late, cross or single_stream,
layers/fusion.py) and pooling over the observed steps -> dropout -> linear head. The same
encoder, by name, is what ``model.encoder=`` gives the self-supervised methods, so a backbone
trained here and one pretrained there are the same network.
"""
from __future__ import annotations

import torch

from layers.encoders import build_encoder
from layers.fusion import FusionHead, input_channels, side_as_channels
from models.base import BaseModel


class BackboneClassifier(BaseModel):
    def __init__(self, in_channels: int, num_classes: int, encoder: str, repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, pooling: str = "mean",
                 extra_features: int = 0, dropout: float = 0.0, fusion: str = "concat",
                 fusion_heads: int = 4, fusion_layers: int = 1, fusion_patch_len: int = 8):
        """``extra_features``: size of the side-feature vector (batch key ``features``), 0 =
        none; the fusion_* keys apply to fusion=cross / single_stream."""
        super().__init__()
        self.head = FusionHead(fusion, repr_dim, extra_features, num_classes, pooling, dropout,
                               fusion_heads, fusion_layers, fusion_patch_len)
        self.fusion, self.extra_features = fusion, extra_features
        channels = input_channels(fusion, in_channels, extra_features)
        self.encoder = build_encoder(encoder, channels, repr_dim, **dict(encoder_kwargs or {}))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` (bool [B, T], True = observed) marks the steps of unequal-length series."""
        if self.fusion == "early" and self.extra_features:
            if features is None:
                raise ValueError(f"this model fuses {self.extra_features} side features but the "
                                 "batch has no 'features'")
            x = side_as_channels(x, features)
        return self.head(self.encoder(x, mask), features, mask)
