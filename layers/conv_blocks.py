"""The residual block of Wang, Yan & Oates (2017): three conv-BN(-ReLU) layers with kernel
sizes 8, 5, 3 and a shortcut (1x1 conv + BN when the width changes). The ResNet1D classifier
(models/resnet1d.py) and the resnet1d encoder of the self-supervised methods
(layers/encoders.py) stack it."""
from __future__ import annotations

import warnings

import torch
from torch import nn

# padding="same" with the even kernel 8 pads 3 left / 4 right, which PyTorch does with an
# internal copy and a warning on every run; the result is what the paper's Keras "same" gives.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")


class ResidualBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_sizes=(8, 5, 3)):
        super().__init__()
        layers = []
        ch = in_ch
        for i, k in enumerate(kernel_sizes):
            layers += [nn.Conv1d(ch, out_ch, k, padding="same"), nn.BatchNorm1d(out_ch)]
            if i < len(kernel_sizes) - 1:
                layers.append(nn.ReLU())
            ch = out_ch
        self.body = nn.Sequential(*layers)
        self.shortcut = (nn.Sequential(nn.Conv1d(in_ch, out_ch, 1), nn.BatchNorm1d(out_ch))
                         if in_ch != out_ch else nn.BatchNorm1d(out_ch))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))
