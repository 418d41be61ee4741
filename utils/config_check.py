"""Checks of config values Hydra cannot check itself (it already rejects unknown groups
and unknown keys). Run before any work, so nothing is half-run."""
from __future__ import annotations

import re

from hydra.utils import get_class
from omegaconf import DictConfig

from utils.instantiate import NON_ARGS, target_parameters

CHOICES = {
    "trainer.precision": ("fp32", "bf16", "fp16"),
    "trainer.data_on_device": ("auto", "true", "false", "True", "False"),
    "task.monitor_mode": ("auto", "min", "max"),
}


def check_config(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        group, name = key.split(".")
        if group in cfg and name in cfg[group]:
            value = str(cfg[group][name])
            if value not in allowed:
                raise ValueError(f"{key}={value} is not valid; choose one of: {', '.join(allowed)}")
    device = str(cfg.trainer.device)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError(f"trainer.device={device} is not valid; use auto, cpu, cuda or cuda:N")
    t = cfg.trainer
    if t.max_epochs is None and t.max_steps is None:
        raise ValueError("trainer.max_epochs and trainer.max_steps are both null; set one of them")
    if str(t.max_steps) == "auto" and str(cfg.task.name) != "pretrain":
        # TS2Vec's 200/600-iteration rule depends on the pretraining set (utils/budget.py)
        raise ValueError(f"trainer.max_steps=auto is only valid for task=pretrain (TS2Vec's rule), "
                         f"not task={cfg.task.name}; set trainer.max_steps=<N> or "
                         "trainer.max_steps=null with trainer.max_epochs=<N>")
    if t.max_steps is not None and str(t.max_steps) != "auto":
        try:
            ok = int(t.max_steps) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"trainer.max_steps={t.max_steps} is not valid; use a count >= 0, "
                             "null, or auto (task=pretrain only)")
    for k in ("batch_size", "eval_batch_size", "checkpoint_every"):
        if k in t and int(t[k]) < 1:
            raise ValueError(f"trainer.{k}={t[k]} must be a positive integer")
    check_scheduler(cfg)


def check_scheduler(cfg: DictConfig) -> None:
    """A schedule argument left null - typically one that follows trainer.max_epochs, as the
    cosine T_max, in a run bounded by trainer.max_steps - would fail only after the first
    epoch, with every step of it lost."""
    sched = cfg.get("scheduler")
    if not sched or not sched.get("_target_"):
        return
    target = get_class(str(sched._target_))
    params = target_parameters(target)
    if params is not None:
        for key in sched:
            # a key a model's config sets for its own schedule (e.g. model=mae's scheduler.warmup)
            # stays when another scheduler is chosen on the command line
            if not str(key).startswith("_") and key not in NON_ARGS and key not in params:
                raise ValueError(f"scheduler.{key} is not an argument of {target.__name__}: "
                                 "the model's config sets it for its own schedule; with another "
                                 f"scheduler add ~scheduler.{key} to the command line to drop it")
    for key, value in sched.items():
        if value is None and not str(key).startswith("_"):
            raise ValueError(
                f"scheduler.{key} is null (it follows trainer.max_epochs, null in this "
                f"step-bounded run?); set trainer.max_epochs=<N>, scheduler.{key}=<value>, or "
                "scheduler=none")

