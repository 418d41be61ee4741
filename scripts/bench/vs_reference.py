#!/usr/bin/env python
"""TS2Vec here beside the official code (github.com/yuezhihan/ts2vec), same settings, one job
at a time: training seconds, wall seconds, peak RSS and test accuracy of each, and the ratios.

    git clone https://github.com/yuezhihan/ts2vec /tmp/ts2vec       # outside this repository
    DATA_DIR=<data> python scripts/bench/vs_reference.py --reference /tmp/ts2vec
    DATA_DIR=<data> python scripts/bench/vs_reference.py --reference /tmp/ts2vec \\
        --datasets ECG200 GunPoint --seeds 0 1 2 --threads 1

Both sides train on the UCR set's TRAIN split with their defaults (batch 8, lr 1e-3, 320
dimensions, 200 iterations for sets of at most 100,000 values, else 600) and score the SVM
protocol on TEST. Ours is ``python main.py model=ts2vec data=ucr data.name=<set>``; the
official one is its ``train.py <set> <run> --loader UCR --eval`` run on the CPU (its device
helper only takes GPU indices, so the runner hands it "cpu") in a scratch directory holding
``datasets/UCR/<set>/<set>_TRAIN.tsv`` and ``_TEST.tsv`` (the set's own .tsv files, or for a
set stored as .ts/.txt the same series written as .tsv); the official code needs the
``bottleneck`` package. Training seconds are what each side reports (the official "Training time", our
metrics.json ``train_seconds``); peak RSS is the child's high-water mark (wait4). The two
sides alternate per seed, so load on the machine falls on both.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.bench.memory import run_child  # noqa: E402

# Runs the official train.py with the CPU as its device; argv[1] is the checkout.
REFERENCE_RUNNER = (
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
                  iters: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ts2vec_reference_") as tmp:
        ucr_dir = Path(tmp) / "datasets" / "UCR"
        ucr_dir.mkdir(parents=True)
        reference_dataset(data_dir, name, ucr_dir)
        cmd = [sys.executable, "-c", REFERENCE_RUNNER, str(checkout.resolve()), name, "bench",
               "--loader", "UCR", "--seed", str(seed), "--max-threads", str(threads), "--eval",
               *(["--iters", str(iters)] if iters else [])]
        r = run_child(cmd, cwd=tmp)
    r["train_seconds"], r["accuracy"] = parse_reference_log(r["log"])
    return r


def parse_reference_log(log: str) -> tuple[float | None, float | None]:
    """The official train.py's printed training time (H:MM:SS.ffffff) in seconds and its test
    accuracy; None for what the log lacks."""
    t, acc = TRAINING_TIME.search(log), EVALUATION.search(log)
    seconds = int(t[1]) * 3600 + int(t[2]) * 60 + float(t[3]) if t else None
    return seconds, (float(acc[1]) if acc else None)


def our_run(data_dir: Path, name: str, seed: int, threads: int, iters: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ts2vec_ours_") as tmp:
        cmd = [sys.executable, "main.py", "model=ts2vec", "data=ucr", f"data.name={name}",
               f"seed={seed}", f"trainer.num_threads={threads}", "trainer.progress=false",
               f"hydra.run.dir={tmp}/run",
               *([f"trainer.max_steps={iters}"] if iters else [])]
        r = run_child(cmd)
        metrics = Path(tmp) / "run" / "metrics.json"
        m = json.loads(metrics.read_text()) if metrics.is_file() else {}
    r["train_seconds"] = m.get("train_seconds")
    r["accuracy"] = m.get("test", {}).get("accuracy")
    return r


def summary(runs: list[dict]) -> dict:
    """Each reported figure's mean over the runs (None where no run has it)."""
    out = {}
    for key in ("train_seconds", "seconds", "peak_rss_kib", "accuracy"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.mean(values) if values else None
    return out


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, required=True, help="checkout of yuezhihan/ts2vec")
    ap.add_argument("--data-dir", type=Path, default=os.environ.get("DATA_DIR"),
                    help="folder holding UCR/<set>/<set>_TRAIN.tsv (default: $DATA_DIR)")
    ap.add_argument("--datasets", nargs="+", default=["ECG200"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=None, help="both sides' iterations (default: their rule)")
    args = ap.parse_args()
    if args.data_dir is None or not (Path(args.data_dir) / "UCR").is_dir():
        sys.exit("no UCR folder: pass --data-dir <folder with UCR/> or set DATA_DIR")
    if not (args.reference / "train.py").is_file():
        sys.exit(f"{args.reference} has no train.py: pass a checkout of yuezhihan/ts2vec")
    os.environ["DATA_DIR"] = str(Path(args.data_dir).resolve())     # our runs read it

    rows = []
    for name in args.datasets:
        ours, ref = [], []
        for seed in args.seeds:
            ref.append(reference_run(args.reference, Path(args.data_dir), name, seed, args.threads, args.iters))
            ours.append(our_run(Path(args.data_dir), name, seed, args.threads, args.iters))
            for side, r in (("official", ref[-1]), ("ours", ours[-1])):
                if r["rc"] != 0 or r["train_seconds"] is None:
                    sys.exit(f"{side} run on {name} (seed {seed}) failed (exit {r['rc']}):\n{r['log'][-3000:]}")
        rows.append((name, summary(ref), summary(ours)))

    print(f"\nTS2Vec, {args.threads} thread(s), mean of seeds {' '.join(map(str, args.seeds))}"
          f" (official / ours; speed-up = official seconds / ours)")
    print(f"{'dataset':<18}{'train s':>16}{'speed-up':>10}{'wall s':>16}{'peak RSS MiB':>18}"
          f"{'RSS ratio':>11}{'accuracy':>16}")
    for name, ref, ours in rows:
        print(f"{name:<18}"
              f"{fmt(ref['train_seconds'], '.1f'):>8}/{fmt(ours['train_seconds'], '.1f'):<7}"
              f"{ref['train_seconds'] / ours['train_seconds']:>10.2f}"
              f"{fmt(ref['seconds'], '.1f'):>8}/{fmt(ours['seconds'], '.1f'):<7}"
              f"{ref['peak_rss_kib'] / 1024:>9.0f}/{ours['peak_rss_kib'] / 1024:<8.0f}"
              f"{ours['peak_rss_kib'] / ref['peak_rss_kib']:>11.2f}"
              f"{fmt(ref['accuracy'], '.3f'):>8}/{fmt(ours['accuracy'], '.3f'):<7}")


if __name__ == "__main__":
    main()
