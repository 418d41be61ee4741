"""Early stopping and model selection on one validation metric (``task.monitor``), in the
direction ``task.monitor_mode`` gives: auto minimises losses and errors and maximises
everything else (accuracy, F1, AUROC). Its state (best value, best epoch, epochs without
improvement) goes into every checkpoint, so a resumed run stops where an uninterrupted one
would."""
from __future__ import annotations

import math

LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "mape", "mspe")


def monitor_mode(key: str, mode: str) -> str:
    """auto: minimise losses and errors, maximise everything else (accuracy, F1, AUROC)."""
    if mode == "auto":
        return "min" if key.split("/")[-1].endswith(LOWER_IS_BETTER) else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"task.monitor_mode={mode} is not valid; use auto, min or max")
    return mode


class EarlyStopping:
    def __init__(self, monitor: str = "loss", mode: str = "auto", patience: int | None = None):
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def key(self, metrics: dict) -> str:
        """The monitored key, or "loss" when the metrics lack it (e.g. the train loss of a
        run without a validation split)."""
        return self.monitor if self.monitor in metrics else "loss"

    def value(self, metrics: dict) -> float:
        key = self.key(metrics)
        if key not in metrics:
            raise KeyError(f"task.monitor={key} is not among the validation metrics "
                           f"{sorted(metrics)}; choose one of them")
        return float(metrics[key])

    def direction(self, metrics: dict) -> str:
        return monitor_mode(self.key(metrics), self.mode)

    def update(self, metrics: dict, epoch: int) -> bool:
        """Record epoch ``epoch`` (1-based); True when it is the best so far (NaN never is)."""
        value = self.value(metrics)
        better = (self.best is None or (value > self.best if self.direction(metrics) == "max"
                                        else value < self.best))
        if math.isnan(value):
            better = False
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return better

    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= int(self.patience)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.bad_epochs = int(state.get("bad_epochs", 0))
