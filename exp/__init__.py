"""Task name (cfg.task.name) -> experiment class. Imports are lazy so a run only needs
the code of its own task."""
from __future__ import annotations

import importlib

TASKS = {
    "classification": "exp.exp_classification.Exp_Classification",
    "pretrain": "exp.exp_pretrain.Exp_Pretrain",
    "forecast": "exp.exp_forecast.Exp_Forecast",
    "explain": "exp.exp_explain.Exp_Explain",
    "impute": "exp.exp_impute.Exp_Impute",
    "generate": "exp.exp_generate.Exp_Generate",
    "detect": "exp.exp_detect.Exp_Detect",
    "segment": "exp.exp_segment.Exp_Segment",
}


def get_exp_class(task: str):
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; known tasks: {', '.join(sorted(TASKS))}")
    module, name = TASKS[task].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)
