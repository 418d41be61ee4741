#!/usr/bin/env python
"""A method here beside its reference implementation, same settings, one job at a time:
training seconds, wall seconds, peak RSS and test scores of each side, and the ratios.

    git clone https://github.com/yuezhihan/ts2vec /tmp/ts2vec            # outside this repository
    DATA_DIR=<data> python scripts/bench/vs_reference.py --reference /tmp/ts2vec
    DATA_DIR=<data> python scripts/bench/vs_reference.py --reference /tmp/ts2vec \\
        --datasets ECG200 GunPoint --seeds 0 1 2 --threads 1

    git clone https://github.com/thuml/Time-Series-Library /tmp/tslib
    DATA_DIR=<data> python scripts/bench/vs_reference.py --method patchtst --reference /tmp/tslib \\
        --seeds 0 1 2 --epochs 1 --precision fp32 bf16

Methods (``--method``) and what each side runs: ``ts2vec`` and ``timesurl``
(scripts/bench/references/ts2vec.py, timesurl.py: the official code's UCR classification with
the SVM protocol), ``patchtst`` and ``informer`` (references/tslib.py:
Time-Series-Library's ETTh1 long-term forecasting), ``transformer_imputer`` (the same library's
ETTh1 imputation, 12.5 % of the values hidden). Our side is ``python main.py`` with the
overrides that give the reference's network and recipe, once per ``--precision``
(``trainer.precision``; the references train in fp32 on the CPU).

Training seconds are what each reference reports for its training steps, and our metrics.json
``train_loop_seconds`` (the training steps alone, without validation passes); peak RSS is the
child's high-water mark (wait4). The sides alternate per seed, so load on the machine falls on
all of them; figures are means over the seeds, scores with the seeds' standard deviation.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.bench.memory import run_child  # noqa: E402
from scripts.bench.references import REFERENCES  # noqa: E402


def our_run(reference, dataset: str, seed: int, threads: int, precision: str, budget: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="vs_reference_ours_") as tmp:
        cmd = [sys.executable, "main.py", *reference.our_overrides(dataset, budget), f"seed={seed}",
               f"trainer.num_threads={threads}", f"trainer.precision={precision}",
               "trainer.progress=false", f"hydra.run.dir={tmp}/run"]
        r = run_child(cmd)
        metrics = Path(tmp) / "run" / "metrics.json"
        m = json.loads(metrics.read_text()) if metrics.is_file() else {}
    r["train_seconds"] = m.get("train_loop_seconds")
    r.update(reference.our_scores(m))
    return r


def summary(runs: list[dict], scores: list[str]) -> dict:
    """Each reported figure's mean over the runs, and each score's standard deviation (None
    where no run has it)."""
    out = {}
    for key in ("train_seconds", "seconds", "peak_rss_kib", *scores):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.mean(values) if values else None
        if key in scores:
            out[f"{key}_std"] = statistics.pstdev(values) if values else None
    return out


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[tuple[str, str, dict]], scores: list[str]) -> list[str]:
    """One line per dataset and side; ratios against the dataset's reference row."""
    lines = [f"{'dataset':<18}{'side':<12}{'train s':>9}{'speed-up':>10}{'wall s':>9}"
             f"{'peak RSS MiB':>14}{'RSS ratio':>11}" + "".join(f"{s:>18}" for s in scores)]
    base = {}
    for dataset, side, s in rows:
        base.setdefault(dataset, s)
        ref = base[dataset]
        speed = ref["train_seconds"] / s["train_seconds"] if ref["train_seconds"] and s["train_seconds"] else None
        rss = s["peak_rss_kib"] / ref["peak_rss_kib"]
        lines.append(f"{dataset:<18}{side:<12}{fmt(s['train_seconds'], '.1f'):>9}{fmt(speed, '.2f'):>10}"
                     f"{s['seconds']:>9.1f}{s['peak_rss_kib'] / 1024:>14.0f}{rss:>11.2f}"
                     + "".join(f"{fmt(s[k], '.4f') + ' ± ' + fmt(s[k + '_std'], '.4f'):>18}"
                               for k in scores))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=sorted(REFERENCES), default="ts2vec")
    ap.add_argument("--reference", type=Path, required=True, help="a checkout of the method's reference code")
    ap.add_argument("--data-dir", type=Path, default=os.environ.get("DATA_DIR"),
                    help="the data directory (default: $DATA_DIR)")
    ap.add_argument("--datasets", nargs="+", default=None, help="default: the method's first set")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=None,
                    help="ts2vec/timesurl: both sides' iterations (default: their rule)")
    ap.add_argument("--epochs", type=int, default=1, help="patchtst/informer/transformer_imputer: both sides' epochs")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"],
                    help="our side's trainer.precision, one run each")
    args = ap.parse_args()
    reference = REFERENCES[args.method]
    if args.data_dir is None or not (Path(args.data_dir) / reference.data).is_dir():
        sys.exit(f"no {reference.data} folder: pass --data-dir <data directory> or set DATA_DIR")
    if not (args.reference / reference.entry).is_file():
        sys.exit(f"{args.reference} has no {reference.entry}: pass a checkout of {reference.title}")
    os.environ["DATA_DIR"] = str(Path(args.data_dir).resolve())     # our runs read it
    budget = {"iters": args.iters, "epochs": args.epochs}

    rows = []
    for dataset in args.datasets or reference.datasets[:1]:
        runs = {"reference": [], **{f"ours {p}": [] for p in args.precision}}
        for seed in args.seeds:
            for side in runs:
                r = (reference.reference_run(args.reference, Path(args.data_dir), dataset, seed,
                                             args.threads, budget) if side == "reference" else
                     our_run(reference, dataset, seed, args.threads, side.split()[1], budget))
                if r["rc"] != 0 or r["train_seconds"] is None:
                    sys.exit(f"{side} run on {dataset} (seed {seed}) failed (exit {r['rc']}):\n{r['log'][-3000:]}")
                runs[side].append(r)
        rows += [(dataset, side, summary(side_runs, reference.scores)) for side, side_runs in runs.items()]

    print(f"\n{reference.title} beside ours, {args.threads} thread(s), mean of seeds "
          f"{' '.join(map(str, args.seeds))}; speed-up = the reference's training seconds / the side's")
    print("\n".join(table(rows, reference.scores)))


if __name__ == "__main__":
    main()
