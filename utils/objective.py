"""The value a hyper-parameter sweeper optimises: the monitored validation metric of the run
(``task.monitor`` of metrics.json "val", best epoch), never a test metric."""
from __future__ import annotations

import math


def sweep_objective(cfg, results: dict) -> float | None:
    """``results["val"][task.monitor]`` (e.g. macro_f1, or the validation loss), or None when
    the run has no validation metrics (a sweeper then needs another objective)."""
    val = results.get("val") if isinstance(results, dict) else None
    if not isinstance(val, dict):
        return None
    key = str(cfg.task.get("monitor", "loss"))
    value = val.get(key, val.get("loss"))
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
