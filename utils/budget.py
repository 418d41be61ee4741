"""The run's training budget, resolved once, before the model is built, from the trainer
settings and the training data; the loop, the scheduler, the loaders and the models that
follow the run's length (BYOL's and DINO's momentum schedules) all read this one object.

- ``trainer.max_epochs`` and ``trainer.max_steps``: the run stops at whichever comes first;
  either may be null (not both).
- ``trainer.max_steps=auto`` (task=pretrain): TS2Vec's rule, 200 optimizer steps when the
  pretraining set holds at most 100,000 values, else 600; the model class says which values
  it counts (``budget_values``: TimesURL adds the time-stamp channel its official loader adds).
- the batch size is capped at the number of training samples (a pretraining set of fewer
  series than trainer.batch_size would otherwise train on no batch when drop_last is set).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

AUTO_SMALL_STEPS, AUTO_LARGE_STEPS, AUTO_THRESHOLD = 200, 600, 100_000


@dataclass(frozen=True)
class TrainingBudget:
    batch_size: int
    steps_per_epoch: int          # batches of the training loader in one epoch
    max_epochs: int | None        # None: bounded by max_steps only
    max_steps: int | None         # None: bounded by max_epochs only

    @property
    def total_steps(self) -> int:
        """Optimizer steps the run will take (schedulers over the whole run, momentum
        schedules)."""
        if self.max_epochs is None:
            return int(self.max_steps)
        steps = self.max_epochs * self.steps_per_epoch
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def epochs_left(self, epoch: int) -> bool:
        return self.max_epochs is None or epoch < self.max_epochs

    def steps_left(self, step: int) -> int | None:
        """Optimizer steps still allowed by max_steps (None: no step bound)."""
        return None if self.max_steps is None else max(self.max_steps - step, 0)

    def finished(self, epoch: int, step: int) -> bool:
        return not self.epochs_left(epoch) or self.steps_left(step) == 0

    def applied_to(self, cfg: DictConfig) -> DictConfig:
        """A copy of ``cfg`` with the resolved trainer.max_steps (auto) and batch size, as the
        hparams table and the checkpoint record them."""
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.trainer.max_steps = self.max_steps
            cfg.trainer.batch_size = self.batch_size
        return cfg


def auto_steps(values: int) -> int:
    """TS2Vec's iteration count for a pretraining set of ``values`` values."""
    return AUTO_SMALL_STEPS if values <= AUTO_THRESHOLD else AUTO_LARGE_STEPS


def resolve_budget(trainer, n_train: int, steps_per_epoch: Callable[[int], int],
                   auto_values: int | None = None, cap_batch: bool = False) -> TrainingBudget:
    """The budget of a run with ``n_train`` training samples; ``steps_per_epoch(batch_size)``
    counts the training loader's batches; ``auto_values`` is what max_steps=auto counts;
    ``cap_batch`` caps the batch size at ``n_train``."""
    batch_size = int(trainer.batch_size)
    if cap_batch and batch_size > n_train:
        log.info("batch size %d > %d training series: using %d", batch_size, n_train, n_train)
        batch_size = n_train
    max_steps = trainer.max_steps
    if str(max_steps) == "auto":
        if auto_values is None:
            raise ValueError("trainer.max_steps=auto is only valid for task=pretrain (TS2Vec's rule)")
        max_steps = auto_steps(int(auto_values))
        log.info("trainer.max_steps=auto -> %d iterations (%d values)", max_steps, auto_values)
    max_epochs = None if trainer.max_epochs is None else int(trainer.max_epochs)
    max_steps = None if max_steps is None else int(max_steps)
    if max_epochs is None and max_steps is None:
        raise ValueError("set trainer.max_epochs or trainer.max_steps")
    return TrainingBudget(batch_size, int(steps_per_epoch(batch_size)), max_epochs, max_steps)
