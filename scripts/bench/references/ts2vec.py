"""The official TS2Vec code (github.com/yuezhihan/ts2vec) as vs_reference.py runs it.

Both sides train on the UCR set's TRAIN split with their defaults (batch 8, lr 1e-3, 320
dimensions, 200 iterations for sets of at most 100,000 values, else 600) and score the SVM
protocol on TEST. Ours is ``python main.py model=ts2vec data=ucr data.name=<set>``; the official
one is its ``train.py <set> <run> --loader UCR --eval`` on the CPU (its device helper only takes
GPU indices, so the runner hands it "cpu") in a scratch directory holding
``datasets/UCR/<set>/<set>_TRAIN.tsv`` and ``_TEST.tsv`` (the set's own .tsv files, or for a set
stored as .ts/.txt the same series written as .tsv); it needs the ``bottleneck`` package. Its
training seconds are the "Training time" it prints.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from scripts.bench.memory import run_child

ENTRY = "train.py"                  # the file a checkout must hold
DATA = "UCR"                        # the data folder the sets are read from
DATASETS = ["ECG200"]
SCORES = ["accuracy"]

# Runs the official train.py with the CPU as its device; argv[1] is the checkout.
RUNNER = (
    "import runpy, sys; checkout = sys.argv[1]; sys.path.insert(0, checkout); import utils; "
    "init = utils.init_dl_program; "
    "utils.init_dl_program = lambda device_name, **kw: init('cpu', **kw); "
    "sys.argv = ['train.py'] + sys.argv[2:]; "
    "runpy.run_path(checkout + '/train.py', run_name='__main__')"
)
TRAINING_TIME = re.compile(r"Training time: (\d+):(\d+):([\d.]+)")
EVALUATION = re.compile(r"Evaluation result: \{'acc': ([\d.]+)")


def reference_dataset(data_dir: Path, name: str, ucr_dir: Path) -> None:
    """The set as the official loader reads it: ucr_dir/<set>/<set>_{TRAIN,TEST}.tsv, label
    first, NaN after a shorter series."""
    from data_provider.ucr_uea import locate, parse_files
    files = locate(data_dir / "UCR" / name, name)
    if files is None:
        sys.exit(f"UCR set {name} not found under {data_dir / 'UCR'}")
    if files["TRAIN"].suffix == ".tsv":
        (ucr_dir / name).symlink_to(files["TRAIN"].parent.resolve())
        return
    arrays = parse_files(files)
    if arrays["x_train"].shape[-1] != 1:
        sys.exit(f"{name} has several channels; the official UCR loader reads univariate sets")
    (ucr_dir / name).mkdir()
    for split in ("TRAIN", "TEST"):
        x, labels = arrays[f"x_{split.lower()}"][..., 0], arrays[f"labels_{split.lower()}"]
        with open(ucr_dir / name / f"{name}_{split}.tsv", "w") as f:
            for label, row in zip(labels, x):
                f.write("\t".join([str(label)] + [repr(float(v)) for v in row]) + "\n")


def reference_run(checkout: Path, data_dir: Path, name: str, seed: int, threads: int,
                  budget: dict) -> dict:
    return run_train_py([sys.executable, "-c", RUNNER, str(checkout.resolve())], data_dir, name,
                        seed, threads, budget)


def run_train_py(runner: list[str], data_dir: Path, name: str, seed: int, threads: int,
                 budget: dict) -> dict:
    """``runner`` + TS2Vec's train.py arguments for UCR classification, in a scratch directory
    holding the set as its loader reads it; the child's figures with the parsed time and
    accuracy (TimesURL's train.py takes the same arguments and prints the same lines)."""
    with tempfile.TemporaryDirectory(prefix="ucr_reference_") as tmp:
        ucr_dir = Path(tmp) / "datasets" / "UCR"
        ucr_dir.mkdir(parents=True)
        reference_dataset(data_dir, name, ucr_dir)
        cmd = [*runner, name, "bench", "--loader", "UCR", "--seed", str(seed),
               "--max-threads", str(threads), "--eval",
               *(["--iters", str(budget["iters"])] if budget.get("iters") else [])]
        r = run_child(cmd, cwd=tmp)
    r["train_seconds"], r["accuracy"] = parse_reference_log(r["log"])
    return r


def parse_reference_log(log: str) -> tuple[float | None, float | None]:
    """The official train.py's printed training time (H:MM:SS.ffffff) in seconds and its test
    accuracy; None for what the log lacks."""
    t, acc = TRAINING_TIME.search(log), EVALUATION.search(log)
    seconds = int(t[1]) * 3600 + int(t[2]) * 60 + float(t[3]) if t else None
    return seconds, (float(acc[1]) if acc else None)


def our_overrides(name: str, budget: dict, model: str = "ts2vec") -> list[str]:
    return [f"model={model}", "data=ucr", f"data.name={name}",
            *([f"trainer.max_steps={budget['iters']}"] if budget.get("iters") else [])]


def our_scores(metrics: dict) -> dict:
    return {"accuracy": metrics.get("test", {}).get("accuracy")}
