"""The official TimesURL code (github.com/Alrash/TimesURL) as vs_reference.py runs it.

Both sides pretrain on the UCR set's TRAIN split with their defaults, which agree (batch 8,
AdamW lr 1e-4 and weight decay 5e-4, 320 dimensions, 200 iterations for sets of at most 100,000
values counting the timestamp channel, else 600; contrastive weight 0.01 beside the masked
reconstruction) and score the SVM protocol on TEST. Ours is ``python main.py model=timesurl
data=ucr data.name=<set>``; the official one is its ``src/train.py <set> <run> --loader UCR
--eval`` in a scratch directory laid out as for TS2Vec (references/ts2vec.py). The runner makes
three CPU substitutions in its own process, nothing in the checkout edited: the device helper
gets "cpu", ``torch.cuda.FloatTensor`` (which the frequency mixing and augmentations draw their
masks from) gives CPU tensors, and the SVM grid search uses as many workers as threads (the
official code fixes 5; ours uses the torch threads). Its output has TS2Vec's lines ("Training
time", "Evaluation result").
"""
from __future__ import annotations

import sys
from pathlib import Path

from scripts.bench.references.ts2vec import run_train_py

ENTRY = "src/train.py"
DATA = "UCR"
DATASETS = ["ECG200"]
SCORES = ["accuracy"]

RUNNER = """
import runpy, sys, warnings
import torch
checkout, threads = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, checkout + "/src")
import utils
init = utils.init_dl_program
utils.init_dl_program = lambda device_name, **kw: init("cpu", **kw)
torch.cuda.FloatTensor = lambda *shape: torch.FloatTensor(*shape)
import tasks._eval_protocols as protocols
grid = protocols.GridSearchCV
protocols.GridSearchCV = lambda *a, **kw: grid(*a, **{**kw, "n_jobs": threads})
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
sys.argv = ["train.py"] + sys.argv[3:]
runpy.run_path(checkout + "/src/train.py", run_name="__main__")
"""


def reference_run(checkout: Path, data_dir: Path, name: str, seed: int, threads: int,
                  budget: dict) -> dict:
    return run_train_py([sys.executable, "-c", RUNNER, str(checkout.resolve()), str(threads)],
                        data_dir, name, seed, threads, budget)
