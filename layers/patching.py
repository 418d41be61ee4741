"""Patching of univariate series (PatchTST, Nie et al., ICLR 2023) and the random patch
masking of its self-supervised pretraining."""
from __future__ import annotations

import torch
from torch import nn


def num_patches(seq_len: int, patch_len: int, stride: int, pad_end: bool = False) -> int:
    if seq_len < patch_len:
        raise ValueError(f"seq_len={seq_len} is shorter than patch_len={patch_len}")
    return (seq_len - patch_len) // stride + 1 + int(pad_end)


class Patching(nn.Module):
    """[B, C, L] -> [B, C, N, patch_len].

    ``pad_end``: repeat the last value ``stride`` times first so the end of the series is
    covered by one more patch (the supervised PatchTST's padding_patch='end'). Without it,
    the series is cut from the start so that the patches end exactly at its last step.
    """

    def __init__(self, seq_len: int, patch_len: int, stride: int, pad_end: bool = True):
        super().__init__()
        self.patch_len, self.stride, self.pad_end = patch_len, stride, pad_end
        self.n = num_patches(seq_len, patch_len, stride, pad_end)
        covered = patch_len + stride * (num_patches(seq_len, patch_len, stride) - 1)
        self.start = 0 if pad_end else seq_len - covered
        self.pad = nn.ReplicationPad1d((0, stride)) if pad_end else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = self.pad(x)
        else:
            x = x[..., self.start:]
        return x.unfold(dimension=-1, size=self.patch_len, step=self.stride)


def random_patch_mask(shape, mask_ratio: float, device=None) -> torch.Tensor:
    """Bool mask [..., N] with exactly int(N * mask_ratio) patches masked per series
    (True = masked), drawn uniformly at random (PatchTST's masked-patch pretraining)."""
    *lead, n = shape
    n_mask = n - int(n * (1 - mask_ratio))
    noise = torch.rand(*lead, n, device=device)
    ranks = noise.argsort(dim=-1).argsort(dim=-1)  # rank of each patch in its series
    return ranks >= n - n_mask
