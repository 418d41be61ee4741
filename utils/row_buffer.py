"""Per-sample outputs of consecutive batches gathered into one preallocated tensor per key.

A list of small per-batch outputs concatenated at the end keeps small blocks alive between the
batches' large freed activations, and glibc's heap grows around them: evaluating Informer on
ETTh1's validation split (2,785 windows, 88 batches) took the resident memory from 630 to
1,440 MiB that way; it stays below 680 MiB with one tensor per key allocated at the first batch."""
from __future__ import annotations

import numpy as np
import torch


class RowBuffer:
    """``add(outputs, n)`` once per batch of ``n`` samples, in order; ``tensors()`` or
    ``arrays()`` at the end. Floating outputs are kept as float32 (autocast's bf16/fp16 too),
    others in their dtype, on ``device`` (default: where each output is, so a GPU evaluation
    copies to the host once). An output whose first dimension is not the batch's (an empty
    placeholder) is concatenated as before."""

    def __init__(self, rows: int, device: torch.device | None = None):
        self.rows, self.device, self.filled = int(rows), device, 0
        self.buffers: dict[str, torch.Tensor] = {}
        self.pieces: dict[str, list[torch.Tensor]] = {}

    def add(self, outputs: dict, n: int) -> None:
        if self.filled + n > self.rows:
            raise ValueError(f"RowBuffer holds {self.rows} rows; a batch of {n} after "
                             f"{self.filled} overflows it")
        for key, value in outputs.items():
            if not torch.is_tensor(value):
                continue
            value = value.detach()
            # floats land as float32: the buffer's copy casts them, no per-batch temporary
            dtype = torch.float32 if value.is_floating_point() else value.dtype
            per_sample = value.dim() > 0 and value.shape[0] == n
            if key in self.buffers and not per_sample:
                raise ValueError(f"output '{key}' has {tuple(value.shape)} for a batch of {n}; "
                                 "earlier batches gave one row per sample")
            if key in self.pieces or not per_sample:
                self.pieces.setdefault(key, []).append(value.to(dtype))
                continue
            if key not in self.buffers:
                self.buffers[key] = torch.empty((self.rows, *value.shape[1:]), dtype=dtype,
                                                device=self.device or value.device)
            self.buffers[key][self.filled:self.filled + n] = value
        self.filled += n

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {k: v[:self.filled] for k, v in self.buffers.items()}
        out.update({k: torch.cat(v) for k, v in self.pieces.items()})
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v.cpu().numpy() for k, v in self.tensors().items()}
