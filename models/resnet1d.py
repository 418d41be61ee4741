"""Residual 1-D CNN baseline of Wang, Yan & Oates (2017), "Time series classification
from scratch with deep neural networks: a strong baseline".

Three residual blocks (64, 128, 128 filters), each three conv-BN-ReLU layers with kernel
sizes 8, 5, 3 and a shortcut (1x1 conv + BN when the width changes), then global average
pooling over time and a linear classifier. The GAP + linear ending is what Class
Activation Maps need: ``feature_maps`` returns the last convolutional maps and ``fc`` the
class weights.
"""
from __future__ import annotations

import torch
from torch import nn

from layers.conv_blocks import ResidualBlock
from models.base import BaseModel

class ResNet1D(BaseModel):
    def __init__(self, in_channels: int, num_classes: int, widths=(64, 128, 128),
                 kernel_sizes=(8, 5, 3), extra_features: int = 0):
        """``extra_features``: size of an optional per-sample feature vector (e.g. RR
        intervals of a heartbeat, batch key ``features``) concatenated to the pooled
        representation before the classifier."""
        super().__init__()
        blocks, ch = [], in_channels
        for w in widths:
            blocks.append(ResidualBlock(ch, w, tuple(kernel_sizes)))
            ch = w
        self.blocks = nn.Sequential(*blocks)
        self.repr_dim = ch
        self.extra_features = extra_features
        self.fc = nn.Linear(ch + extra_features, num_classes)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] (channels last) -> last conv feature maps [B, C_feat, T]."""
        return self.blocks(x.transpose(1, 2))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        pooled = self.feature_maps(x).mean(dim=-1)
        if self.extra_features:
            if features is None:
                raise ValueError("this ResNet1D was built with extra_features="
                                 f"{self.extra_features} but the batch has no 'features'")
            pooled = torch.cat([pooled, features.to(pooled.dtype)], dim=-1)
        return self.fc(pooled)
