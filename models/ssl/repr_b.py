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


def encode_in_batches(net: torch.nn.Module, x, batch_size: int, encode_batch) -> torch.Tensor:
    """Run ``encode_batch(rows, x_batch)`` over x [N, T, C] (array or tensor) in batches, with
    ``net`` in eval mode and no gradients, on ``net``'s device; return one CPU tensor."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    if x.dim() != 3:
        raise ValueError(f"encode expects x [samples, time, channels], got {tuple(x.shape)}")
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            outs = [encode_batch(slice(i, i + batch_size), x[i:i + batch_size].to(device)).float().cpu()
                    for i in range(0, len(x), batch_size)]
        return torch.cat(outs, dim=0)
    finally:
        net.train(was_training)


class BatchedEncodeMixin:
    encode_batch_size = 256

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x, mask=None, pooling: str | None = "max", batch_size: int | None = None,
               **_) -> torch.Tensor:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; use one of {list(POOLINGS)}")

        def batch(rows, xb):
            m = mask[rows].to(xb.device) if torch.is_tensor(mask) else mask
            return self.embed(xb, pooling, mask=m)

        return encode_in_batches(self, x, int(batch_size or self.encode_batch_size), batch)
