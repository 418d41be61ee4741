"""Checks of config values Hydra cannot check itself (it already rejects unknown groups
and unknown keys). Run before any work, so nothing is half-run."""
from __future__ import annotations

import re

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from utils.instantiate import NON_ARGS, target_parameters

CHOICES = {
    "trainer.precision": ("fp32", "bf16", "fp16"),
    "trainer.data_on_device": ("auto", "true", "false", "True", "False"),   # a bool reads True/False
    "task.monitor_mode": ("auto", "min", "max"),
    "task.decision_rule": ("argmax", "fitted"),
    "data.rr_normalize": ("none", "record", "causal"),
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
    if str(t.max_steps) != "auto":
        _count(cfg, "trainer.max_steps", minimum=0, null=True,
               hint="a count >= 0, null, or auto (task=pretrain only)")
    check_numbers(cfg)
    check_scheduler(cfg)


# key -> (smallest value, null allowed); integers where counts go
COUNTS = {
    "seed": (0, False), "trainer.max_epochs": (0, True), "trainer.batch_size": (1, False),
    "trainer.eval_batch_size": (1, False), "trainer.checkpoint_every": (1, False),
    "trainer.patience": (0, True), "trainer.log_every_n_steps": (1, False),
    "trainer.num_workers": (0, False), "trainer.max_per_class": (1, True),
    "trainer.num_threads": (1, True), "data.seq_len": (1, False), "data.label_len": (0, False),
    "data.pred_len": (1, False), "task.decision_min_support": (1, False),
}
# key -> (lower bound, inclusive?, null allowed)
NUMBERS = {
    "optimizer.lr": (0.0, False, False), "optimizer.weight_decay": (0.0, True, False),
    "trainer.grad_clip": (0.0, False, True), "trainer.mixup_alpha": (0.0, True, False),
    "loss.logit_adjustment": (0.0, True, False), "data.rr_causal_seconds": (0.0, False, False),
}


def _count(cfg: DictConfig, key: str, minimum: int, null: bool, hint: str | None = None) -> None:
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    if value is None and (null or OmegaConf.select(cfg, key, default="absent") == "absent"):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}={value} is not valid; use "
                         f"{hint or f'an integer >= {minimum}' + (' or null' if null else '')}")


def check_numbers(cfg: DictConfig) -> None:
    """Counts are integers in range, rates and weights are numbers in range: a wrong value
    stops the run before any work (a negative epoch count would train nothing and still
    report metrics)."""
    for key, (minimum, null) in COUNTS.items():
        _count(cfg, key, minimum, null)
    for key, (low, inclusive, null) in NUMBERS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            if null or OmegaConf.select(cfg, key, default="absent") == "absent":
                continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            value >= low if inclusive else value > low)
        if not ok:
            raise ValueError(f"{key}={value} is not valid; use a number "
                             f"{'>=' if inclusive else '>'} {low:g}" + (" or null" if null else ""))
    data = cfg.get("data") or {}
    if "seq_len" in data and "label_len" in data and int(data.label_len) > int(data.seq_len):
        raise ValueError(f"data.label_len={data.label_len} must not exceed data.seq_len="
                         f"{data.seq_len}: the decoder's start token is the end of the input window")


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

