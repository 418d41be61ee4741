"""The one base class of the representation methods (models/ssl/), and what the siamese
methods share on top of it.

``RepresentationModel`` is the contract every method fulfils, so task=pretrain trains it in
the shared loop and every downstream protocol (utils/protocols) evaluates it:

    forward(batch) -> outputs        training step's outputs for the method's loss
                                     (augmentations drawn from torch's RNG: ``seed=`` reproduces)
    embed(x, pooling, mask=None)     differentiable representations of x [B, T, C] without
                                     augmentation: [B, D], or [B, T', D] with pooling=None
    encode(x, mask=None, pooling=..., batch_size=None)
                                     the same without gradients, in eval mode, in batches, on
                                     the model's device; a CPU tensor (NaN in x = unobserved)
    repr_dim                         D
    sliding_encode                   True when ``encode`` also takes ``causal=``,
                                     ``sliding_length=`` and ``sliding_padding=`` (TS2Vec's
                                     forecasting protocol)
    uses_labels                      True when the pretraining batches must carry "y" (-1 =
                                     unlabelled; the semi-supervised hybrid)
    batch_groups(arrays)             a group id per pretraining sample when training batches
                                     must hold whole groups (COMET's trials), else None
    budget_values(values, channels)  the number of values TS2Vec's 200/600-iteration rule
                                     counts for a pretraining set of ``values`` values

plus the training hooks of every model (models/base.py): ``after_optimizer_step`` (EMA
teachers, weight averaging, queues), ``fixed_lr_parameters``, ``on_train_epoch_start``.

``SSLMethod`` adds what the siamese / contrastive methods share (a method subclass adds its
heads and what ``forward`` returns for its loss, solo-learn style): the backbone from
``layers.encoders.build_encoder`` (ts2vec | resnet1d | transformer), one augmentation
pipeline per view from config (utils/augmentations.py), instance vectors by pooling the
per-time representations (``pooling``, TS2Vec's max by default), and momentum (EMA) helpers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from layers.encoders import POOLINGS, build_encoder, pool
from models.base import BaseModel
from utils.augmentations import build_views
from utils.module_state import evaluating
from utils.row_buffer import RowBuffer
from utils.schedulers import cosine_anneal


def encode_in_batches(net: nn.Module, x, batch_size: int, encode_batch) -> torch.Tensor:
    """Run ``encode_batch(rows, x_batch)`` over x [N, T, C] (array or tensor) in batches, with
    ``net`` in eval mode and no gradients, on ``net``'s device; return one CPU tensor."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    if x.dim() != 3:
        raise ValueError(f"encode expects x [samples, time, channels], got {tuple(x.shape)}")
    device = next(net.parameters()).device
    with evaluating(net):
        return batched_outputs(x, batch_size, device, encode_batch)


def batched_outputs(x: torch.Tensor, batch_size: int, device, encode_batch) -> torch.Tensor:
    """``encode_batch(rows, x_batch)`` over x in batches, written into one CPU float tensor
    (utils/row_buffer.py: per-batch outputs concatenated at the end grew the C heap, peak RSS
    up to 1.5x the same run's on another try)."""
    if len(x) == 0:
        return torch.empty((0,))
    out = RowBuffer(len(x), device=torch.device("cpu"))
    for i in range(0, len(x), batch_size):
        rows = slice(i, i + batch_size)
        h = encode_batch(rows, x[rows].to(device))
        out.add({"h": h}, h.shape[0])
    return out.tensors()["h"]


class RepresentationModel(BaseModel):
    """Base of every representation method (contract in the module docstring)."""

    repr_dim: int
    encode_batch_size = 256
    sliding_encode = False
    uses_labels = False

    def forward(self, batch: dict) -> dict:
        raise NotImplementedError

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x, mask=None, pooling: str | None = "max", batch_size: int | None = None,
               causal: bool = False, sliding_length: int | None = None,
               sliding_padding: int = 0) -> torch.Tensor:
        """x [N, T, C] (tensor or array, NaN = unobserved) -> [N, D] (or [N, T', D] with
        pooling=None) on the CPU; ``mask`` optional bool [N, T] (True = keep)."""
        if causal or sliding_length is not None:
            raise ValueError(f"{type(self).__name__}.encode has no causal/sliding mode (TS2Vec's "
                             "forecasting protocol); use model=ts2vec or timesurl for it")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; use one of {list(POOLINGS)}")

        def batch(rows, xb):
            m = mask[rows].to(xb.device) if torch.is_tensor(mask) else mask
            return self.embed(xb, pooling, mask=m)

        return encode_in_batches(self, x, int(batch_size or self.encode_batch_size), batch)

    def batch_groups(self, arrays: dict):
        """Group id per pretraining sample when batches must hold whole groups, else None."""
        return None

    @classmethod
    def budget_values(cls, values: int, in_channels: int) -> int:
        """The values TS2Vec's 200/600-iteration rule (trainer.max_steps=auto) counts."""
        return values


def cosine_momentum(base: float, step: int, total: int | None) -> float:
    """BYOL / DINO schedule: 1 - (1 - base) * (cos(pi * k / K) + 1) / 2, from ``base`` at
    step 0 to 1 at step K (held at 1 afterwards; ``base`` when K is unknown)."""
    if not total:
        return base
    return cosine_anneal(base, 1.0, min(max(step, 0), total) / total)


class SSLMethod(RepresentationModel):
    """Base of the siamese methods. Subclasses set ``n_views`` and implement ``forward``."""

    n_views = 2

    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256):
        super().__init__()
        self.backbone = build_encoder(encoder, in_channels, repr_dim, **(encoder_kwargs or {}))
        self.repr_dim = repr_dim
        self.pooling = pooling
        self.encode_batch_size = encode_batch_size
        self.views = build_views(augment, self.n_views)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # the same count on the host: reading the buffer every step would wait for the GPU
        self.steps_taken = 0
        self.register_load_state_dict_post_hook(_refresh_steps_taken)

    # ---- views and representations ---------------------------------------------------
    @staticmethod
    def observed(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x with NaN zeroed, bool [B, T] True where every channel is observed)."""
        mask = ~torch.isnan(x).any(dim=-1)
        return torch.nan_to_num(x, nan=0.0), mask

    def make_views(self, x: torch.Tensor, pipelines=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One augmented (x, mask) per pipeline (default: self.views)."""
        x, mask = self.observed(x)
        return [p(x, mask) for p in (pipelines or self.views)]

    def represent(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                  net: nn.Module | None = None) -> torch.Tensor:
        """Pooled instance vectors [B, D] of (augmented) x [B, T, C]."""
        h = (net or self.backbone)(x, mask)
        return pool(h, self.pooling, mask)

    def represent_views(self, views, net: nn.Module | None = None, joint: bool = True) -> list[torch.Tensor]:
        """Pooled vectors of each view. ``joint``: views of equal shape go through the network
        in one batch (BatchNorm statistics over all of them: SimCLR's global BN, DINO's
        multi-crop wrapper); otherwise one pass per view (SimSiam, BYOL)."""
        if not joint:
            return [self.represent(x, m, net) for x, m in views]
        groups: dict[tuple, list[int]] = {}
        for i, (x, _) in enumerate(views):
            groups.setdefault(tuple(x.shape), []).append(i)
        out: list = [None] * len(views)
        for idx in groups.values():
            x = torch.cat([views[i][0] for i in idx])
            m = torch.cat([views[i][1] for i in idx])
            for i, r in zip(idx, self.represent(x, m, net).chunk(len(idx))):
                out[i] = r
        return out

    # ---- training hooks -------------------------------------------------------------
    def after_optimizer_step(self, step: int) -> None:
        self.step.fill_(int(step))
        self.steps_taken = int(step)

    # ---- representation contract ------------------------------------------------------
    def eval_network(self) -> nn.Module:
        """The network whose representations are evaluated (the paper's choice)."""
        return self.backbone

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """Differentiable representations without augmentation; ``mask`` (bool [B, T], True =
        keep) drops steps besides the unobserved (NaN) ones."""
        x, keep = self.observed(x)
        if torch.is_tensor(mask):
            keep = keep & mask.to(x.device).to(torch.bool)
        return pool(self.eval_network()(x, keep), pooling, keep)


def _refresh_steps_taken(module, incompatible_keys) -> None:
    """After a checkpoint is loaded (resume), the host copy follows the restored buffer."""
    module.steps_taken = int(module.step)
