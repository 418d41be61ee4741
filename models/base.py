"""The hooks the training loop calls on a model, written once.

Every model of the framework derives from ``BaseModel`` (an ``nn.Module``) and overrides the
hooks it needs; the loop (exp/exp_basic.py) calls them directly:

    on_train_epoch_start(epoch)  before each training epoch (PatchTST's head-only epochs)
    after_optimizer_step(step)   after each optimizer step, ``step`` = steps taken so far
                                 (EMA teachers, weight averaging, queues, memory banks)
    fixed_lr_parameters()        parameters that keep the optimizer's lr whatever the
                                 scheduler does (SimSiam's predictor)

A model fitted in closed form rather than by gradient steps (a linear discriminant) sets
``fits_in_closed_form = True`` and overrides ``fit_closed_form(arrays)``: the experiment then
hands it the whole training split once, as numpy arrays by batch key, in place of the loop,
and evaluates and checkpoints it like any other model (its fitted values live in buffers).

A generative imputer (DDPM) sets ``imputes_by_sampling = True``: task=impute then trains it on
its own loss from the complete window and the observed mask, ``forward(x, observed=...)``, and
fills the hidden values of a test window by ``impute(x_observed, observed)``.

A model brought from elsewhere (any ``nn.Module``) trains too: ``hooks_of`` gives it the
defaults, which do nothing. Representation models add their own contract on top
(models/ssl/base.py).
"""
from __future__ import annotations

import numpy as np
from torch import nn


class BaseModel(nn.Module):
    fits_in_closed_form: bool = False
    imputes_by_sampling: bool = False

    def on_train_epoch_start(self, epoch: int) -> None:
        """Called before training epoch ``epoch`` (0-based)."""

    def after_optimizer_step(self, step: int) -> None:
        """Called after every optimizer step; ``step`` counts the steps taken so far."""

    def fixed_lr_parameters(self) -> list[nn.Parameter]:
        """Parameters whose learning rate the scheduler leaves at the optimizer's value."""
        return []

    def fit_closed_form(self, arrays: dict[str, np.ndarray]) -> None:
        """Fit on the whole training split (``fits_in_closed_form`` models only)."""
        raise NotImplementedError(f"{type(self).__name__} trains by gradient steps, not in closed form")


_NO_HOOKS = BaseModel()


def hooks_of(model: nn.Module) -> BaseModel:
    """The model itself when it derives from BaseModel, else hooks that do nothing."""
    return model if isinstance(model, BaseModel) else _NO_HOOKS
