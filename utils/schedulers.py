"""Learning-rate schedules torch does not ship."""
from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def one_cycle_factor(step: int, total: int, pct_start: float = 0.3, div_factor: float = 25.0,
                     final_div_factor: float = 1e4) -> float:
    """lr / max_lr of torch's OneCycleLR (cosine, two phases) at ``step`` of ``total``:
    from 1/div_factor up to 1 over pct_start of the steps, then down to
    1/(div_factor * final_div_factor)."""
    def cos(start, end, pct):
        return end + (start - end) / 2.0 * (1 + math.cos(math.pi * pct))
    lo, floor = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
    up_end = float(pct_start * total) - 1
    if step <= up_end:
        return cos(lo, 1.0, step / up_end) if up_end > 0 else 1.0
    down = total - 1 - up_end
    return cos(1.0, floor, min((step - up_end) / down, 1.0)) if down > 0 else floor


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
