"""The value a hyper-parameter sweeper optimises: a validation metric of the run, never a test
metric (docs/sweeps.md).

- A supervised run (classification, forecasting): ``task.monitor`` of metrics.json "val", the
  best epoch's evaluation on the validation split.
- A pretraining run (task=pretrain): its downstream scores ("test", or "val" for data without
  a test split) are never used. The objective is the pretraining loss of the evaluated (last)
  encoder on held-out validation series, metrics.json "val_last_epoch"; it exists when "val"
  is not pretrained on (``task.pretrain_splits=[train]``) and ``task.encoder=last``.

Under a sweeper with a ``direction`` (Optuna), a run without such a metric, or a direction that
does not match the metric's (``task.monitor_mode``), is refused instead of being optimised.
"""
from __future__ import annotations

import logging
import math

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import ListConfig

from utils.early_stopping import monitor_mode

log = logging.getLogger(__name__)

DIRECTIONS = {"min": "minimize", "max": "maximize"}


def sweep_objective(cfg, results: dict) -> float | None:
    """The validation metric a sweeper optimises (module docstring); None when the run has none
    (a single run), NaN when it is NaN."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    sweeping = hydra is not None and hydra.mode == RunMode.MULTIRUN
    found = validation_metric(cfg, results)
    direction = _sweeper_direction(hydra) if sweeping else None
    if found is None:
        if direction is not None:
            raise ValueError(no_objective_message(cfg))
        return None
    name, value = found
    mode = monitor_mode(name.rsplit(".", 1)[-1], str(cfg.task.get("monitor_mode", "auto")))
    if direction is not None and direction != DIRECTIONS[mode]:
        raise ValueError(
            f"hydra.sweeper.direction={direction} but the objective {name} is better when "
            f"{'smaller' if mode == 'min' else 'larger'}: set "
            f"hydra.sweeper.direction={DIRECTIONS[mode]} (or task.monitor_mode)")
    if sweeping:
        log.info("sweep objective: %s = %r", name, value)
    return value


def validation_metric(cfg, results: dict) -> tuple[str, float] | None:
    """(name, value) of the run's monitored validation metric, or None when it has none."""
    key = str(cfg.task.get("monitor", "loss"))
    results = results if isinstance(results, dict) else {}
    if str(cfg.task.name) == "pretrain":
        if str(cfg.task.get("encoder", "last")) != "last" or cfg.task.get("pretrained"):
            return None                 # the held-out loss of the evaluated encoder is unknown
        split, metrics = "val_last_epoch", results.get("val_last_epoch")
    else:
        split, metrics = "val", results.get("val")
    if not isinstance(metrics, dict):
        return None
    if key not in metrics:              # as early stopping: without the monitor, the loss
        key = "loss"
    value = metrics.get(key)
    if value is None:
        return None if key not in metrics else (f"{split}.{key}", math.nan)
    return f"{split}.{key}", float(value)


def no_objective_message(cfg) -> str:
    if str(cfg.task.name) == "pretrain":
        return ("this pretraining run has no validation objective for the sweeper: it needs the "
                "loss on held-out validation series of the evaluated encoder; set "
                "task.pretrain_splits=[train] and task.encoder=last, on data with a validation "
                "split (the test metrics are never an objective)")
    return (f"this run has no validation metric {cfg.task.get('monitor', 'loss')} for the "
            "sweeper; use data with a validation split (e.g. data.val_fraction > 0) - the test "
            "metrics are never an objective")


def _sweeper_direction(hydra) -> str | None:
    """minimize | maximize of a single-objective sweeper that has a direction, else None."""
    direction = hydra.sweeper.get("direction")
    if direction is None or isinstance(direction, (list, tuple, ListConfig)):
        return None
    return str(direction).rsplit(".", 1)[-1]       # "maximize" or Direction.maximize
