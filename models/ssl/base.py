"""What every siamese / contrastive method shares (a method subclass adds its heads and
what ``forward`` returns for its loss, solo-learn style):

- the backbone from ``layers.encoders.build_encoder`` (ts2vec | resnet1d | transformer),
- one augmentation pipeline per view from config (utils/augmentations.py), drawn from
  torch's RNG so ``seed=`` reproduces a run,
- instance vectors by pooling the per-time representations (``pooling``, TS2Vec's max by
  default),
- the representation contract of exp/exp_pretrain.py: ``encode`` (no grad, eval mode, in
  batches, CPU output), ``embed`` (differentiable, for fine-tuning) and ``repr_dim``,
- momentum (EMA) helpers and the training length the EMA schedules need.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from layers.encoders import build_encoder, pool
from models.ssl.repr_b import encode_in_batches
from utils.augmentations import build_views
from utils.schedulers import cosine_anneal


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1 - momentum)


def cosine_momentum(base: float, step: int, total: int | None) -> float:
    """BYOL / DINO schedule: 1 - (1 - base) * (cos(pi * k / K) + 1) / 2, from ``base`` at
    step 0 to 1 at step K (held at 1 afterwards; ``base`` when K is unknown)."""
    if not total:
        return base
    return cosine_anneal(base, 1.0, min(max(step, 0), total) / total)


def total_steps(max_steps=None, max_epochs=None, n_pretrain=None, batch_size=None,
                drop_last: bool = False, pretrain_values: int | None = None) -> int | None:
    """Optimizer steps of the run from the trainer settings; None when unknown.
    max_steps=auto is exp/exp_pretrain.py's rule (200 iterations for <= 100,000 values of
    pretraining data, else 600), which the experiment resolves only after building the model."""
    try:
        if str(max_steps) == "auto":
            return None if not pretrain_values else (200 if int(pretrain_values) <= 100_000 else 600)
        if max_steps is not None:
            return int(max_steps)
        if max_epochs is not None and n_pretrain and batch_size:
            bs = min(int(batch_size), int(n_pretrain))
            per_epoch = int(n_pretrain) // bs if drop_last else math.ceil(int(n_pretrain) / bs)
            return int(max_epochs) * max(per_epoch, 1)
    except (TypeError, ValueError):
        pass
    return None


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy for a momentum / target network: same weights, no gradients."""
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    return twin


class SSLMethod(nn.Module):
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
    def on_train_step_end(self, step: int | None = None) -> None:
        self.step.fill_(int(step) if step is not None else int(self.step) + 1)

    # ---- representation contract (exp/exp_pretrain.py) --------------------------------
    def eval_network(self) -> nn.Module:
        """The network whose representations are evaluated (the paper's choice)."""
        return self.backbone

    def embed(self, x: torch.Tensor, pooling: str | None = "max") -> torch.Tensor:
        """Differentiable representations without augmentation (fine-tuning)."""
        x, mask = self.observed(x)
        return pool(self.eval_network()(x, mask), pooling, mask)

    def encode(self, x, mask=None, pooling: str | None = "max", batch_size: int | None = None,
               causal: bool = False, sliding_length: int | None = None, **_) -> torch.Tensor:
        """x [N, T, C] (tensor or array, NaN = unobserved) -> [N, D] (or [N, T, D] with
        pooling=None) on the CPU; ``mask`` optional bool [N, T] (True = keep)."""
        if causal or sliding_length is not None:
            raise ValueError(f"{type(self).__name__}.encode has no causal/sliding mode (TS2Vec's "
                             "forecasting protocol); use model=ts2vec or timesurl for it")
        net = self.eval_network()

        def batch(rows, xb):
            xb, keep = self.observed(xb)
            if torch.is_tensor(mask):
                keep = keep & mask[rows].to(xb.device).to(torch.bool)
            return pool(net(xb, keep), pooling, keep)

        return encode_in_batches(net, x, int(batch_size or self.encode_batch_size), batch)

