"""Projection MLPs, predictors and the DINO head of the self-supervised methods.

Sizes are the papers' (set in conf/model/*.yaml):
- SimCLR: Linear(D, D) - BN - ReLU - Linear(D, 128)            (hidden = encoder width)
- MoCo v2: Linear(D, D) - ReLU - Linear(D, 128)                (no BN)
- BYOL projector and predictor: Linear(., 4096) - BN - ReLU - Linear(4096, 256)
- SimSiam projector: 3 x Linear(., 2048) with BN after each (the last BN without affine),
  ReLU between; predictor: Linear(2048, 512) - BN - ReLU - Linear(512, 2048)
- DINO: 3-layer MLP (2048 hidden, GELU) to a 256-d bottleneck, L2 normalisation, then a
  weight-normalised linear layer to K = 65536 outputs whose norm is fixed to 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``num_layers`` linear layers; between them (optional) BatchNorm and the activation.
    ``last_bn``: BatchNorm after the output layer too ("affine" or "plain" without affine)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 batch_norm: bool = True, activation: str = "relu", last_bn: str | None = None):
        super().__init__()
        if num_layers < 1:
            raise ValueError("MLP needs num_layers >= 1")
        act = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in act:
            raise ValueError(f"unknown activation '{activation}'; choose relu or gelu")
        layers, dim = [], in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(act[activation]())
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=last_bn is None))
        if last_bn == "affine":
            layers.append(nn.BatchNorm1d(out_dim))
        elif last_bn == "plain":
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        elif last_bn is not None:
            raise ValueError(f"last_bn={last_bn!r}; use None, 'affine' or 'plain'")
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def simclr_projector(in_dim: int, hidden_dim: int | None = None, out_dim: int = 128) -> MLP:
    return MLP(in_dim, hidden_dim or in_dim, out_dim, num_layers=2, batch_norm=True)


def moco_v2_head(in_dim: int, hidden_dim: int | None = None, out_dim: int = 128) -> MLP:
    return MLP(in_dim, hidden_dim or in_dim, out_dim, num_layers=2, batch_norm=False)


def byol_mlp(in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> MLP:
    return MLP(in_dim, hidden_dim, out_dim, num_layers=2, batch_norm=True)


def simsiam_projector(in_dim: int, dim: int = 2048, num_layers: int = 3) -> MLP:
    return MLP(in_dim, dim, dim, num_layers=num_layers, batch_norm=True, last_bn="plain")


def simsiam_predictor(dim: int = 2048, pred_dim: int = 512) -> MLP:
    return MLP(dim, pred_dim, dim, num_layers=2, batch_norm=True)


class WeightNormLinear(nn.Module):
    """Linear layer without bias whose rows are v / ||v|| * g; with ``fix_norm`` g = 1 and
    not learned (DINO's norm_last_layer)."""

    def __init__(self, in_dim: int, out_dim: int, fix_norm: bool = True):
        super().__init__()
        self.v = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.v, std=0.02)
        self.g = None if fix_norm else nn.Parameter(torch.ones(out_dim, 1))

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        v = self.v.detach() if frozen else self.v
        w = F.normalize(v, dim=1)
        if self.g is not None:
            w = w * (self.g.detach() if frozen else self.g)
        return F.linear(x, w)


class DINOHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, num_layers: int = 3, batch_norm: bool = False,
                 norm_last_layer: bool = True):
        super().__init__()
        self.mlp = MLP(in_dim, hidden_dim, bottleneck_dim, num_layers=num_layers,
                       batch_norm=batch_norm, activation="gelu")
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, fix_norm=norm_last_layer)

    def forward(self, x: torch.Tensor, freeze_last_layer: bool = False) -> torch.Tensor:
        """``freeze_last_layer``: no gradient to the last layer (DINO keeps it fixed during
        the first epoch to stabilise training)."""
        return self.last_layer(F.normalize(self.mlp(x), dim=-1), frozen=freeze_last_layer)


class LinearClassifier(nn.Module):
    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)
