"""Optimizer and learning-rate scheduler of a run, from cfg.optimizer and cfg.scheduler.

- Every trainable parameter takes the optimizer's weight decay, unless
  ``optimizer.weight_decay_1d=false``: then biases and normalisation gains (1-D tensors) take
  none, as DINO's and MAE's official code groups them.
- Parameters the model names in ``fixed_lr_parameters()`` (SimSiam's predictor with
  fix_pred_lr) go in groups marked ``fix_lr`` that keep the optimizer's lr whatever the
  scheduler does (``hold_fixed_lr`` after every scheduler step).
- ``fused: auto`` (Adam, AdamW) takes torch's fused single-kernel update where every
  parameter is a floating-point tensor on the CPU or a CUDA device (torch >= 2.4 on the CPU),
  else torch's default; the same update up to float rounding, with fewer passes over memory.
- A per-batch schedule (one taking ``steps_per_epoch`` / ``total_steps``) gets them from the
  run's budget (utils/budget.py); ReduceLROnPlateau follows the monitored validation metric
  in its direction; ``scheduler.interval`` (epoch | step) says when it steps.
"""
from __future__ import annotations

import torch
from omegaconf import open_dict

from utils.budget import TrainingBudget
from utils.instantiate import build


def parameter_groups(params, fixed_lr: list, weight_decay_1d: bool = True):
    """The optimizer's parameter list, or groups keyed by (fixed lr, no decay)."""
    fixed_ids = {id(p) for p in fixed_lr}
    no_decay_1d = not weight_decay_1d
    if not fixed_ids and not no_decay_1d:
        return params
    groups: dict[tuple[bool, bool], list] = {}
    for p in params:
        groups.setdefault((id(p) in fixed_ids, no_decay_1d and p.ndim <= 1), []).append(p)
    # sorted: scheduled before fixed (TensorBoard logs group 0's lr), decayed before free
    return [{"params": members, **({"weight_decay": 0.0} if free else {}),
             **({"fix_lr": True} if fixed else {})}
            for (fixed, free), members in sorted(groups.items())]


FUSED_DEVICES = ("cpu", "cuda")


def fused_supported(params) -> bool:
    """Whether torch's fused Adam/AdamW takes these parameters (CPU support came in 2.4)."""
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 4):
        return False
    return all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)


def build_optimizer(cfg_optimizer, params, fixed_lr: list, global_batch: int = 1) -> torch.optim.Optimizer:
    """``optimizer.lr_scale_batch: B`` applies the linear scaling rule lr x global_batch / B
    (DINO's lr x batch / 256), global_batch being trainer.batch_size times the number of
    processes; null keeps lr as given. ``optimizer.fused: auto`` resolves as the module says."""
    params = list(params)
    scale_batch = cfg_optimizer.get("lr_scale_batch")
    fused = cfg_optimizer.get("fused")
    if scale_batch or fused == "auto":
        cfg_optimizer = cfg_optimizer.copy()
        with open_dict(cfg_optimizer):
            if scale_batch:
                cfg_optimizer.lr = float(cfg_optimizer.lr) * global_batch / float(scale_batch)
            if fused == "auto":
                cfg_optimizer.fused = True if fused_supported(params) else None
    optimizer = build(cfg_optimizer)(parameter_groups(
        params, fixed_lr, bool(cfg_optimizer.get("weight_decay_1d", True))))
    for group in optimizer.param_groups:
        if group.get("fix_lr"):
            group["fixed_lr"] = group["lr"]
    return optimizer


def build_scheduler(cfg_scheduler, optimizer, budget: TrainingBudget, mode: str):
    """The scheduler of cfg.scheduler (None when it has no _target_)."""
    if not cfg_scheduler or not cfg_scheduler.get("_target_"):
        return None
    # candidates: the target takes what its signature accepts (utils/instantiate.py)
    scheduler = build(cfg_scheduler, mode=mode, steps_per_epoch=budget.steps_per_epoch,
                      total_steps=budget.total_steps)(optimizer)
    hold_fixed_lr(optimizer)       # LambdaLR set every group's step-0 lr
    return scheduler


class ScheduleStepper:
    """Steps the scheduler after every batch or after every epoch (``scheduler.interval``);
    ReduceLROnPlateau gets the monitored validation value."""

    def __init__(self, scheduler, optimizer, cfg_scheduler):
        self.scheduler, self.optimizer = scheduler, optimizer
        self.interval = str(cfg_scheduler.get("interval", "epoch")) if cfg_scheduler else "epoch"

    def after_batch(self) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()
            hold_fixed_lr(self.optimizer)

    def after_epoch(self, monitored_value) -> None:
        """``monitored_value()`` gives the validation value a plateau schedule follows."""
        if self.scheduler is None or self.interval != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored_value())
        else:
            self.scheduler.step()
        hold_fixed_lr(self.optimizer)


def hold_fixed_lr(optimizer) -> None:
    """Undo the scheduler on the ``fix_lr`` groups (SimSiam's --fix-pred-lr): back to the
    lr they were built with (kept in the group, so in checkpoints too)."""
    for group in optimizer.param_groups:
        if group.get("fix_lr"):
            group["lr"] = group["fixed_lr"]
