"""DINO (Caron et al., ICCV 2021): self-distillation with no labels.

Multi-crop: 2 global views (random crops of 40-100 % of the series, resampled to its
length) and ``n_local_crops`` local views (5-40 %, resampled to ``local_size`` of it, as
96/224 px in the paper) all go through the student; only the global views go through the
teacher. Student and teacher are encoder + DINO head (3-layer MLP, 256-d bottleneck,
L2-normalised, weight-normalised last layer to K = 65536). Teacher outputs are centred
(centre = EMA of the teacher's batch means, momentum 0.9) and sharpened (temperature 0.04,
student 0.1) in the loss; the teacher is the EMA of the student with momentum rising from
0.996 to 1 on a cosine schedule; the last layer gets no gradient during the first
``freeze_last_layer`` of the run (the paper's first epoch of 100: 1 %, a fraction like the
lr warm-up so a 100-step budget keeps the proportion; one epoch of the 51,021 MIT-BIH
pretraining beats is 399 steps at batch 128, longer than such a run).
Representations are the teacher encoder's (the paper evaluates the teacher).
"""
from __future__ import annotations

import torch

from layers.heads import DINOHead
from models.ssl.base import SSLMethod, cosine_momentum
from utils.module_state import ema_update, frozen_copy
from utils.augmentations import build_views
from utils.losses.dino import updated_center

DEFAULT_LOCAL = [{"name": "crop_resize", "scale": [0.05, 0.4], "out_len": 0.43}]
DEFAULT_GLOBAL = [{"name": "crop_resize", "scale": [0.4, 1.0]}]


class DINO(SSLMethod):
    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, out_dim: int = 65536, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, norm_last_layer: bool = True,
                 n_local_crops: int = 8, local_augment=None,
                 base_momentum: float = 0.996, center_momentum: float = 0.9,
                 freeze_last_layer: float = 0.01, total_steps: int | None = None):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs,
                         augment if augment is not None else DEFAULT_GLOBAL, pooling, encode_batch_size)
        self.local_views = build_views(local_augment if local_augment is not None else DEFAULT_LOCAL,
                                       int(n_local_crops))
        self.head = DINOHead(self.repr_dim, out_dim, hidden_dim, bottleneck_dim,
                             norm_last_layer=norm_last_layer)
        self.teacher_backbone = frozen_copy(self.backbone)
        self.teacher_head = frozen_copy(self.head)
        self.base_momentum, self.center_momentum = base_momentum, center_momentum
        self.total_steps = total_steps
        if not 0.0 <= float(freeze_last_layer) < 1.0:
            raise ValueError(f"model.freeze_last_layer={freeze_last_layer} is a fraction of the "
                             "run's steps: use [0, 1) (the paper's 0.01 = 1 of 100 epochs)")
        self.freeze_steps = int(round(float(freeze_last_layer) * (self.total_steps or 0)))
        self.register_buffer("center", torch.zeros(1, out_dim))
        self._pending_center = None

    def forward(self, batch: dict) -> dict:
        x = batch["x"]
        global_views = self.make_views(x)
        local_views = self.make_views(x, self.local_views) if self.local_views else []
        freeze = self.training and self.steps_taken < self.freeze_steps
        # one head pass over every crop's vector, as the paper's multi-crop wrapper: the
        # 65,536-wide weight-normalised layer is normalised, multiplied and back-propagated
        # once per step instead of once per crop
        crops = self.represent_views(global_views + local_views)
        student = self.head(torch.cat(crops), freeze_last_layer=freeze).unflatten(0, (len(crops), -1))
        with torch.no_grad():
            teacher_crops = self.represent_views(global_views, self.teacher_backbone)
            teacher = self.teacher_head(torch.cat(teacher_crops)).unflatten(0, (len(teacher_crops), -1))
        if self.training:
            self._pending_center = teacher.detach()
        return {"student": student, "teacher": teacher, "center": self.center}

    def momentum_at(self, step: int) -> float:
        return cosine_momentum(self.base_momentum, step, self.total_steps)

    def after_optimizer_step(self, step: int) -> None:
        super().after_optimizer_step(step)
        tau = self.momentum_at(step)
        ema_update(self.teacher_backbone, self.backbone, tau)
        ema_update(self.teacher_head, self.head, tau)
        if self._pending_center is not None:
            self.center.copy_(updated_center(self.center, self._pending_center, self.center_momentum))
            self._pending_center = None

    def eval_network(self):
        return self.teacher_backbone
