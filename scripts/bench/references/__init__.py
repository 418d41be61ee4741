"""The reference implementations vs_reference.py runs beside ours, by method name."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from scripts.bench.references import timesurl, ts2vec, tslib


@dataclass(frozen=True)
class Reference:
    title: str                 # the method and the repository its checkout comes from
    entry: str                 # a file every checkout of it holds
    data: str                  # the folder under the data directory its datasets come from
    datasets: list[str]        # what runs without --datasets
    scores: list[str]          # the test figures both sides report
    budget: str                # "iters" or "epochs": what --iters/--epochs set on both sides
    reference_run: Callable    # (checkout, data_dir, dataset, seed, threads, budget) -> dict
    our_overrides: Callable    # (dataset, budget) -> main.py overrides
    our_scores: Callable       # metrics.json -> {score: value}


REFERENCES = {
    "ts2vec": Reference("TS2Vec (yuezhihan/ts2vec)", ts2vec.ENTRY, ts2vec.DATA, ts2vec.DATASETS,
                        ts2vec.SCORES, "iters", ts2vec.reference_run, ts2vec.our_overrides,
                        ts2vec.our_scores),
    "timesurl": Reference("TimesURL (Alrash/TimesURL)", timesurl.ENTRY, timesurl.DATA,
                          timesurl.DATASETS, timesurl.SCORES, "iters", timesurl.reference_run,
                          partial(ts2vec.our_overrides, model="timesurl"), ts2vec.our_scores),
    **{model: Reference(tslib.SETTINGS[model]["title"], tslib.ENTRY, tslib.DATA, tslib.DATASETS,
                        tslib.SCORES, "epochs", partial(tslib.reference_run, model),
                        partial(tslib.our_overrides, model), tslib.our_scores)
       for model in tslib.SETTINGS},
}
