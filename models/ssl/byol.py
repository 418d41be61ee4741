"""BYOL (Grill et al., NeurIPS 2020): an online network (encoder, projector 4096 -> 256,
predictor 4096 -> 256) predicts the target network's projection of the other view; loss
2 - 2 cos, symmetrised. The target is the EMA of the online network with tau rising from
tau_base = 0.996 to 1 on a cosine schedule over the run (``total_steps``: the run's optimizer
steps, which task=pretrain passes in). Representations are the online encoder's, as the paper keeps."""
from __future__ import annotations

import torch

from layers.heads import byol_mlp
from models.ssl.base import SSLMethod, cosine_momentum
from utils.module_state import ema_update, frozen_copy


class BYOL(SSLMethod):
    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, proj_hidden_dim: int = 4096, proj_dim: int = 256,
                 pred_hidden_dim: int = 4096, base_momentum: float = 0.996,
                 total_steps: int | None = None):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs, augment, pooling,
                         encode_batch_size)
        self.projector = byol_mlp(self.repr_dim, proj_hidden_dim, proj_dim)
        self.predictor = byol_mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.target_backbone = frozen_copy(self.backbone)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum = base_momentum
        self.total_steps = total_steps

    def forward(self, batch: dict) -> dict:
        views = self.make_views(batch["x"])
        h1, h2 = self.represent_views(views, joint=False)
        z1, z2 = self.projector(h1), self.projector(h2)
        with torch.no_grad():
            g1, g2 = self.represent_views(views, self.target_backbone, joint=False)
            t1, t2 = self.target_projector(g1), self.target_projector(g2)
        return {"p1": self.predictor(z1), "p2": self.predictor(z2), "t1": t1, "t2": t2}

    def momentum_at(self, step: int) -> float:
        return cosine_momentum(self.base_momentum, step, self.total_steps)

    def after_optimizer_step(self, step: int) -> None:
        super().after_optimizer_step(step)
        tau = self.momentum_at(step)
        ema_update(self.target_backbone, self.backbone, tau)
        ema_update(self.target_projector, self.projector, tau)

