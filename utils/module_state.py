"""Helpers on any nn.Module's weights and mode, shared by the models: a frozen copy (a momentum
teacher, averaged weights), the exponential moving average of weights, and running a module in
eval mode without gradients with its previous mode restored afterwards."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy for a momentum / target network or averaged weights: same weights, no gradients."""
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1 - momentum)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode and without gradients for the block; its mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
