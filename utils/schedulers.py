"""Learning-rate schedules torch does not ship."""
from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def cosine_anneal(start: float, end: float, pct: float) -> float:
    """Half cosine from ``start`` (pct 0) to ``end`` (pct 1): the shape of every cosine
    schedule here (learning rate, weight decay, EMA momentum)."""
    return end + (start - end) / 2.0 * (1 + math.cos(math.pi * pct))


def one_cycle_factor(step: int, total: int, pct_start: float = 0.3, div_factor: float = 25.0,
                     final_div_factor: float = 1e4) -> float:
    """lr / max_lr of torch's OneCycleLR (cosine, two phases) at ``step`` of ``total``:
    from 1/div_factor up to 1 over pct_start of the steps, then down to
    1/(div_factor * final_div_factor)."""
    lo, floor = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
    up_end = float(pct_start * total) - 1
    if step <= up_end:
        return cosine_anneal(lo, 1.0, step / up_end) if up_end > 0 else 1.0
    down = total - 1 - up_end
    return cosine_anneal(1.0, floor, min((step - up_end) / down, 1.0)) if down > 0 else floor


class PatchTSTFineTuneLR(LambdaLR):
    """PatchTST's self-supervised fine-tuning schedule (Learner.fine_tune of the official
    code), stepped per batch: one one-cycle over the ``freeze_epochs`` head-only epochs at the
    optimizer's lr, then a second one over the remaining ``epochs - freeze_epochs`` at
    lr * ``unfrozen_lr_scale`` (the official 1/2). With freeze_epochs 0 it is a single one-cycle
    over all epochs (Learner.linear_probe / fit_one_cycle)."""

    def __init__(self, optimizer, steps_per_epoch: int, epochs: int, freeze_epochs: int = 0,
                 unfrozen_lr_scale: float = 0.5, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, last_epoch: int = -1):
        if not 0 <= freeze_epochs < epochs:
            raise ValueError(f"model.freeze_epochs={freeze_epochs} must lie in [0, trainer.max_epochs="
                             f"{epochs}): the whole network trains in the epochs after it")
        first = freeze_epochs * steps_per_epoch
        second = (epochs - freeze_epochs) * steps_per_epoch
        kw = dict(pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor)

        def factor(step: int) -> float:
            if step < first:
                return one_cycle_factor(step, first, **kw)
            scale = unfrozen_lr_scale if first else 1.0
            return scale * one_cycle_factor(step - first, second, **kw)

        super().__init__(optimizer, factor, last_epoch=last_epoch)


def warmup_decay_factor(step: int, total: int, warmup_steps: int, decay: str = "cosine",
                        floor: float = 0.0, milestones=(), gamma: float = 0.1) -> float:
    """lr / peak lr at optimizer step ``step`` of ``total``: linear from 0 to 1 over
    ``warmup_steps``, then cosine (or linear) down to ``floor`` at ``total`` (held there),
    or (``step``) times ``gamma`` at each of the ``milestones`` (fractions of ``total``)."""
    if step < warmup_steps:
        return step / warmup_steps
    if decay == "step":
        return gamma ** sum(step >= round(m * total) for m in milestones)
    span = max(total - warmup_steps, 1)
    pct = min((step - warmup_steps) / span, 1.0)
    return cosine_anneal(1.0, floor, pct) if decay == "cosine" else 1.0 - (1.0 - floor) * pct


class WarmupDecayLR(LambdaLR):
    """Per-step warm-up + decay over the run's optimizer steps, as the self-supervised papers
    schedule their pretraining: SimCLR, BYOL, DINO and MAE warm up linearly, then decay with a
    half cosine (DINO to min lr 1e-6, the others to 0), MoCo v2 and SimSiam decay with a cosine
    from the start; wav2vec 2.0 warms up over 8 % of the updates, then decays linearly to 0;
    instance discrimination steps down x0.1 at 120 and 160 of 200 epochs (``decay="step"``,
    ``milestones`` [0.6, 0.8] as fractions of the run).
    ``warmup`` is a fraction of ``total_steps`` (the run's length in optimizer
    steps, passed by the experiment from trainer.max_steps / max_epochs), so a shorter
    budget keeps the paper's proportions. ``weight_decay_end``: the weight decay of every
    param group that has one follows a cosine from its initial value to this (DINO: 0.04 ->
    0.4); null keeps it constant."""

    def __init__(self, optimizer, total_steps: int, warmup: float = 0.1, decay: str = "cosine",
                 final_lr: float = 0.0, weight_decay_end: float | None = None,
                 milestones=(0.6, 0.8), gamma: float = 0.1, last_epoch: int = -1):
        if decay not in ("cosine", "linear", "step"):
            raise ValueError(f"scheduler.decay={decay!r}: use cosine, linear or step")
        milestones = [float(m) for m in milestones]
        if decay == "step" and not all(0.0 < m < 1.0 for m in milestones):
            raise ValueError(f"scheduler.milestones={milestones} are fractions of the run's steps: "
                             "use values in (0, 1), e.g. [0.6, 0.8]")
        if not 0.0 <= float(warmup) < 1.0:
            raise ValueError(f"scheduler.warmup={warmup} is a fraction of the run's steps: use [0, 1)")
        if int(total_steps) < 0:
            raise ValueError(f"WarmupDecayLR needs the run's length: total_steps={total_steps}")
        self.total = max(int(total_steps), 1)   # 0: a frozen random encoder, never stepped
        self.warmup_steps = int(round(float(warmup) * self.total))
        self.weight_decay_end = weight_decay_end
        self.initial_wd = [g.get("weight_decay", 0.0) for g in optimizer.param_groups]

        def group_factor(group):
            peak = group.get("initial_lr", group["lr"])
            floor = float(final_lr) / peak if peak else 0.0
            return lambda step: warmup_decay_factor(step, self.total, self.warmup_steps, decay, floor,
                                                    milestones, float(gamma))

        super().__init__(optimizer, [group_factor(g) for g in optimizer.param_groups],
                         last_epoch=last_epoch)

    def step(self, epoch=None):
        super().step(epoch)
        if self.weight_decay_end is None:
            return
        pct = min(max(self.last_epoch, 0) / self.total, 1.0)
        for group, start in zip(self.optimizer.param_groups, self.initial_wd):
            if start:       # groups kept free of weight decay stay free
                group["weight_decay"] = cosine_anneal(start, float(self.weight_decay_end), pct)
