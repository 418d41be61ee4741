"""Checks of config values Hydra cannot check itself (it already rejects unknown groups
and unknown keys). Run before any work, so nothing is half-run."""
from __future__ import annotations

import re

from omegaconf import DictConfig

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
    for k in ("batch_size", "eval_batch_size"):
        if int(t[k]) < 1:
            raise ValueError(f"trainer.{k}={t[k]} must be a positive integer")
