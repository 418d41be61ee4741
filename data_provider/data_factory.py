"""Maps ``cfg.data.family`` to the module that builds that family's datasets.

Each family module exposes ``build(cfg) -> DataBundle`` and reads ``cfg.data``,
``cfg.paths`` (data_dir, cache_dir) and ``cfg.seed``, never the task: a family returns its
labelled "train", "val", "test" splits (and "unlabelled_*" inputs where they differ), and
task=pretrain shapes its pretraining set from them (data_provider/pretraining.py). Imports
are lazy so a run only imports (and needs the dependencies of) the family it uses.
"""
from __future__ import annotations

import importlib

from .base import DataBundle

DATA_FAMILIES = {
    "ecg": "data_provider.mitdb",
    "ecg_stream": "data_provider.mitdb_stream",
    "ucr": "data_provider.ucr_uea",
    "uea": "data_provider.ucr_uea",
    "ett": "data_provider.forecast_data",
    "custom": "data_provider.forecast_data",
    "tfc": "data_provider.tfc_data",
}


def data_provider(cfg) -> DataBundle:
    family = cfg.data.family
    if family not in DATA_FAMILIES:
        raise ValueError(f"unknown data family '{family}' (cfg.data.family); known families: "
                         f"{', '.join(sorted(DATA_FAMILIES))}")
    module = importlib.import_module(DATA_FAMILIES[family])
    return module.build(cfg)
