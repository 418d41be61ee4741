"""TS2Vec (Yue et al., "TS2Vec: Towards Universal Representation of Time Series", AAAI 2022).

Training step (``forward`` in train mode): two overlapping random crops of each series
(one crop length per batch, a random offset per series, as the official code), each
encoded with its own random timestamp mask; the representations of the overlapping
steps go to the hierarchical contrastive loss (utils/losses/ts2vec.py).

Encoding uses the running (equal-weight, SWA) average of the encoder's weights over all
training steps, as the official code's ``AveragedModel``; ``after_optimizer_step`` updates it.
Series longer than 2 x ``max_train_length`` are cut into sections before pretraining
(data_provider/pretraining.py, as the official code).

``encoder`` other than "ts2vec" trains another encoder of layers/encoders.py (a backbone) with
TS2Vec's crops and hierarchical loss: its timestamp mask zeroes the masked input steps (the
TS2Vec encoder zeroes them after its input projection, which another encoder does not have).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from layers.dilated_conv import MASK_MODES, TSEncoder, timestamp_mask
from layers.encoders import build_encoder
from models.ssl.base import RepresentationModel, batched_outputs
from utils.module_state import evaluating

POOLINGS = ("max", "last", None)


def take_per_row(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """x [B, T, ...] -> [B, length, ...] with row b taken from starts[b]."""
    idx = starts.view(-1, 1) + torch.arange(length, device=x.device)
    return x[torch.arange(x.size(0), device=x.device).view(-1, 1), idx]


def random_overlapping_crops(length: int, batch: int, temporal_unit: int = 0, device=None):
    """TS2Vec's context crops. Returns (starts1, len1, starts2, len2, overlap): view 1 covers
    [a1, b) and view 2 [a2, b2) with a1 <= a2 < b <= b2 per row; the last ``overlap`` steps
    of view 1 are the first ``overlap`` steps of view 2. Drawn from torch's RNG."""
    def rint(lo, hi, size=None):   # uniform integer in [lo, hi)
        if size is None:
            return int(torch.randint(lo, hi, (1,)).item())
        return torch.randint(lo, hi, (size,), device=device)

    min_len = 2 ** (temporal_unit + 1)
    if length < min_len:
        raise ValueError(f"series of length {length} are too short to crop with temporal_unit="
                         f"{temporal_unit} (need at least {min_len} steps)")
    crop_l = rint(min_len, length + 1)
    crop_left = rint(0, length - crop_l + 1)
    crop_right = crop_left + crop_l
    crop_eleft = rint(0, crop_left + 1)
    crop_eright = rint(crop_right, length + 1)
    offset = rint(-crop_eleft, length - crop_eright + 1, batch)
    return (offset + crop_eleft, crop_right - crop_eleft,
            offset + crop_left, crop_eright - crop_left, crop_l)


class TimestampMasked(nn.Module):
    """Another encoder with TS2Vec's timestamp masking: ``mask`` None (``mask_mode`` in
    training, every step at evaluation), a mode name or bool [B, T] (True = keep)."""

    def __init__(self, encoder: nn.Module, mask_mode: str = "binomial"):
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode '{mask_mode}'; choose one of {', '.join(MASK_MODES)}")
        self.net, self.mask_mode = encoder, mask_mode

    def forward(self, x: torch.Tensor, mask: torch.Tensor | str | None = None) -> torch.Tensor:
        if mask is None:
            mask = self.mask_mode if self.training else "all_true"
        if isinstance(mask, str):
            mask = timestamp_mask(mask, x.size(0), x.size(1), x.device)
        keep = mask.to(torch.bool) & ~torch.isnan(x).any(dim=-1)
        return self.net(torch.nan_to_num(x, nan=0.0) * keep.unsqueeze(-1).to(x.dtype), keep)


class TS2Vec(RepresentationModel):
    sliding_encode = True     # encode(causal=, sliding_length=, sliding_padding=)

    def __init__(self, in_channels: int, output_dims: int = 320, hidden_dims: int = 64,
                 depth: int = 10, kernel_size: int = 3, mask_mode: str = "binomial",
                 repr_dropout: float = 0.1, temporal_unit: int = 0,
                 max_train_length: int | None = 3000, average_weights: bool = True,
                 encode_batch_size: int = 256, encoder: str = "ts2vec",
                 encoder_kwargs: dict | None = None):
        super().__init__()
        if encoder == "ts2vec":
            self.encoder = TSEncoder(in_channels, output_dims, hidden_dims, depth, kernel_size,
                                     mask_mode, repr_dropout)
        else:
            self.encoder = TimestampMasked(
                build_encoder(encoder, in_channels, output_dims, **dict(encoder_kwargs or {})),
                mask_mode)
        self.repr_dim = output_dims
        self.temporal_unit = temporal_unit
        self.max_train_length = max_train_length
        self.encode_batch_size = encode_batch_size
        self.averaged = None
        if average_weights:
            self.averaged = AveragedModel(self.encoder)
            self.averaged.requires_grad_(False)
            self.averaged.update_parameters(self.encoder)   # the average starts from the init

    # ---- training ---------------------------------------------------------------------
    def _train_window(self, x: torch.Tensor) -> torch.Tensor:
        """One random window of max_train_length steps for the whole batch (official code)."""
        if self.max_train_length is not None and x.size(1) > self.max_train_length:
            start = int(torch.randint(0, x.size(1) - self.max_train_length + 1, (1,)).item())
            x = x[:, start:start + self.max_train_length]
        return x

    def forward(self, batch: dict) -> dict:
        x = self._train_window(batch["x"])
        s1, l1, s2, l2, overlap = random_overlapping_crops(x.size(1), x.size(0),
                                                           self.temporal_unit, x.device)
        out1 = self.encoder(take_per_row(x, s1, l1))       # random timestamp mask in train mode
        out2 = self.encoder(take_per_row(x, s2, l2))
        return {"z1": out1[:, -overlap:], "z2": out2[:, :overlap]}

    def after_optimizer_step(self, step: int) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.encoder)

    # ---- representations --------------------------------------------------------------
    def eval_network(self) -> nn.Module:
        """The network used for representations: the averaged encoder when averaging."""
        return self.averaged.module if self.averaged is not None else self.encoder

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """Differentiable representations without augmentation (for fine-tuning); ``mask``
        as in ``encode``."""
        return pool(self.eval_network()(x, "all_true" if mask is None else mask), pooling)

    @torch.no_grad()
    def encode(self, x, mask=None, pooling: str | None = "max", batch_size: int | None = None,
               causal: bool = False, sliding_length: int | None = None,
               sliding_padding: int = 0) -> torch.Tensor:
        """Representations of x [N, T, C] (tensor or array) in batches, no grad, eval mode.

        pooling: "max" over all time steps -> [N, D]; "last" step -> [N, D]; None -> [N, T, D].
        mask: None (keep every step), a mode name of layers.dilated_conv, or bool [N, T].
        sliding_length / sliding_padding / causal: TS2Vec's sliding inference. Step t's
        representation is computed from the window [t0 - padding, t0 + L (+ padding if not
        causal)) of its block t0..t0+L-1; with causal=True and L=1 it sees only x[t-padding..t]
        (the forecasting protocol). Returns a CPU float tensor.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; choose max, last or None")
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
        if x.dim() != 3:
            raise ValueError(f"encode expects x [samples, time, channels], got {tuple(x.shape)}")
        net = self.eval_network()
        device = next(net.parameters()).device
        bs = batch_size or self.encode_batch_size
        with evaluating(net):
            if sliding_length is None:
                def batch(rows, xb):
                    m = mask[rows].to(device) if torch.is_tensor(mask) else mask
                    return pool(net(xb, "all_true" if m is None else m), pooling)
                return batched_outputs(x, bs, device, batch)
            h = self._encode_sliding(net, x, mask, causal, sliding_length, sliding_padding,
                                     bs, device)
            return pool(h, pooling)

    def _encode_sliding(self, net, x, mask, causal, length, padding, bs, device):
        if torch.is_tensor(mask):
            raise ValueError("sliding encoding takes a mask mode name, not a mask tensor")
        n, t, c = x.shape
        n_win = math.ceil(t / length)
        right = 0 if causal else padding
        width = padding + length + right
        total = padding + n_win * length + right
        xp = torch.full((n, total, c), float("nan"))
        xp[:, padding:padding + t] = x                           # NaN outside = unobserved
        windows = xp.unfold(1, width, length)[:, :n_win]           # N x n_win x C x width
        windows = windows.permute(0, 1, 3, 2).reshape(n * n_win, width, c)
        outs = []
        for i in range(0, len(windows), bs):
            h = net(windows[i:i + bs].to(device), mask or "all_true")
            outs.append(h[:, padding:padding + length].cpu())
        h = torch.cat(outs, dim=0).reshape(n, n_win * length, -1)
        return h[:, :t]


def pool(h: torch.Tensor, pooling: str | None) -> torch.Tensor:
    """[B, T, D] -> [B, D] by max over time or the last step; None keeps [B, T, D]."""
    if pooling == "max":
        return F.max_pool1d(h.transpose(1, 2), kernel_size=h.size(1)).squeeze(-1)
    if pooling == "last":
        return h[:, -1]
    return h
