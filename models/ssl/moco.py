"""MoCo v2 (He et al., CVPR 2020; Chen et al. 2020): a query encoder trained by InfoNCE
against the key of the other view (momentum key encoder, m = 0.999) and a queue of K keys
of earlier batches (negatives); 2-layer MLP head (v2), temperature 0.2.

After every optimizer step (``after_optimizer_step``) the key encoder moves towards the query
encoder and the batch's keys replace the oldest ones in the queue. The queue is capped at
the number of pretraining series (``n_pretrain``) so it never holds a series twice over
(the paper's 65,536 assumes ImageNet). Representations are the query encoder's, as the
paper evaluates. Shuffling BN across GPUs is not done (one device).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from layers.heads import moco_v2_head
from models.ssl.base import SSLMethod
from utils.module_state import ema_update, frozen_copy
from utils.distributed import gather


class MoCo(SSLMethod):
    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, proj_hidden_dim: int | None = None, proj_dim: int = 128,
                 queue_size: int = 65536, momentum: float = 0.999, n_pretrain: int | None = None):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs, augment, pooling,
                         encode_batch_size)
        self.projector = moco_v2_head(self.repr_dim, proj_hidden_dim, proj_dim)
        self.key_backbone = frozen_copy(self.backbone)
        self.key_projector = frozen_copy(self.projector)
        self.momentum = momentum
        k = int(queue_size) if not n_pretrain else min(int(queue_size), int(n_pretrain))
        if k < 1:
            raise ValueError(f"moco: queue_size={queue_size} must be >= 1")
        self.register_buffer("queue", F.normalize(torch.randn(k, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending_keys = None

    def forward(self, batch: dict) -> dict:
        (x1, m1), (x2, m2) = self.make_views(batch["x"])
        q = self.projector(self.represent(x1, m1))
        with torch.no_grad():
            k = F.normalize(self.key_projector(self.represent(x2, m2, self.key_backbone)), dim=1)
        if self.training:
            self._pending_keys = k.detach()
        return {"q": q, "k": k, "queue": self.queue}

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write keys over the oldest entries (ring buffer); the pointer moves by len(keys)."""
        size = self.queue.size(0)
        keys = keys[-size:]
        idx = (self.queue_ptr + torch.arange(len(keys), device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + len(keys)) % size)

    def after_optimizer_step(self, step: int) -> None:
        super().after_optimizer_step(step)
        ema_update(self.key_backbone, self.backbone, self.momentum)
        ema_update(self.key_projector, self.projector, self.momentum)
        if self._pending_keys is not None:
            self.enqueue(gather(self._pending_keys))     # every process's keys, in rank order
            self._pending_keys = None
