"""A run's results: metrics.json (written atomically) and the final scalars and hparams row
in TensorBoard, so sweeps compare in one view."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from utils.atomic import write_text_atomic
from utils.metrics import flatten_metrics
from utils.tb import TensorBoardLogger

SPLITS = ("val", "test")


def jsonable(obj):
    """Plain JSON values: numpy scalars as Python numbers, NaN as null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_results(results: dict, run_dir: Path, tb: TensorBoardLogger, cfg: DictConfig,
                  step: int, log_hparams: bool = True) -> None:
    """metrics.json, the final/<split>/<metric> scalars and (optionally) the hparams row of
    ``cfg`` with the final metrics of each split."""
    write_text_atomic(json.dumps(jsonable(results), indent=2), Path(run_dir) / "metrics.json")
    final = {}
    for split in SPLITS:
        if isinstance(results.get(split), dict):
            flat = flatten_metrics(results[split])
            tb.scalars({f"final/{split}/{k}": v for k, v in flat.items()}, step)
            final.update({f"hparam/{split}/{k}": v for k, v in flat.items() if "/" not in k})
    if log_hparams:
        tb.hparams(cfg, final)
    tb.flush()
