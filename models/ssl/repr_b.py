"""The representation interface of exp/exp_pretrain.py, shared by CPC, TF-C, COMET, MAE and
wav2vec 2.0: a model defines the differentiable ``embed(x, pooling)``; ``encode`` runs it
on an array or tensor [N, T, C] in batches, without gradients, in eval mode, on the
model's device, and returns a CPU tensor."""
from __future__ import annotations

import numpy as np
import torch

from layers.encoders import POOLINGS, pool

# the shared pooling of layers/encoders.py: "max" | "mean" | "last" over time, None keeps [B, T, D]
pool_time = pool


class BatchedEncodeMixin:
    encode_batch_size = 256

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, x, mask=None, pooling: str | None = "max", batch_size: int | None = None,
               **_) -> torch.Tensor:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; use one of {list(POOLINGS)}")
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
        if x.dim() != 3:
            raise ValueError(f"encode expects x [samples, time, channels], got {tuple(x.shape)}")
        device = next(self.parameters()).device
        bs = int(batch_size or self.encode_batch_size)
        was_training = self.training
        self.eval()
        try:
            outs = []
            for i in range(0, len(x), bs):
                m = mask[i:i + bs].to(device) if torch.is_tensor(mask) else mask
                outs.append(self.embed(x[i:i + bs].to(device), pooling, mask=m).float().cpu())
            return torch.cat(outs, dim=0)
        finally:
            self.train(was_training)
