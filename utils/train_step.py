"""Small helpers of the training loop that know nothing of the experiment."""
from __future__ import annotations

import torch


def split_loss(loss) -> tuple[torch.Tensor, dict]:
    """A loss is a Tensor or {"loss": Tensor, <part>: Tensor, ...}: (loss, detached parts)."""
    if isinstance(loss, dict):
        parts = {k: v.detach() for k, v in loss.items() if k != "loss" and torch.is_tensor(v)}
        return loss["loss"], parts
    return loss, {}


def batch_size_of(batch: dict) -> int:
    x = batch.get("x")
    if x is None:
        x = next(v for v in batch.values() if torch.is_tensor(v))
    return int(x.shape[0])


class LossMeter:
    """The size-weighted mean of per-batch losses, summed on the loss's device in float64, and
    the first step whose loss was not finite. Nothing here waits for the GPU; ``check`` and
    ``mean`` read the device once. On the CPU a non-finite loss is caught at once (free)."""

    def __init__(self):
        self.total, self.count, self.bad_step = None, 0, None

    def add(self, loss: torch.Tensor, n: int, step: int) -> None:
        loss = loss.detach()
        value = loss.double() * n
        self.total = value if self.total is None else self.total + value
        self.count += n
        finite = torch.isfinite(loss)
        if loss.device.type == "cpu":
            if not finite:
                raise _not_finite(loss.item(), step)
            return
        step_t = torch.full((), step, device=loss.device)
        first = ~finite if self.bad_step is None else (~finite) & (self.bad_step < 0)
        base = torch.full((), -1, device=loss.device) if self.bad_step is None else self.bad_step
        self.bad_step = torch.where(first, step_t, base)

    def check(self) -> None:
        """Raise if any loss so far was not finite (one read of the device)."""
        if self.bad_step is not None and int(self.bad_step) >= 0:
            raise _not_finite(float("nan"), int(self.bad_step))

    def mean(self) -> float:
        return float(self.total) / max(self.count, 1) if self.total is not None else 0.0


def _not_finite(value: float, step: int) -> FloatingPointError:
    return FloatingPointError(
        f"training loss is {value} at step {step}; lower optimizer.lr, set trainer.grad_clip, "
        "or check the input data for NaN")
