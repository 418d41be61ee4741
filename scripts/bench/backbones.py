#!/usr/bin/env python
"""The backbones side by side: every classifier on MIT-BIH DS1 -> DS2, ECG200 and a multichannel
UEA set, seeds 0-2, under the same recipe (each dataset's config; selection on validation data
only), with parameter count, training samples/s and peak memory.

    DATA_DIR=<data> python scripts/bench/backbones.py
    DATA_DIR=<data> python scripts/bench/backbones.py --models resnet1d,mixconv --datasets ecg200 \
        --seeds 0 trainer.max_epochs=5

Each run is ``python main.py task=classification model=<model> <dataset> seed=<s> [overrides]``
in a child process (run directory <out>/<dataset>/<model>/seed<s>); the table is printed as
markdown and written to <out>/summary.md. Columns: test accuracy and macro-F1 (mean ± std over
the seeds), on MIT-BIH the S and V sensitivity / positive predictivity (means), trainable
parameters, training samples per second (optimizer steps x batch size / training seconds) and
the child's peak resident memory (MiB, ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
MODELS = ["resnet1d", "transformer", "mixconv", "pkinet", "danet", "dat", "dualvit", "atd",
          "deformable", "multiway", "two_stream"]
DATASETS = {
    "ecg": ["data=ecg"],
    "ecg200": ["data=ucr", "data.name=ECG200"],
    "basicmotions": ["data=uea", "data.name=BasicMotions"],
}
NOT_PARAMETERS = ("running_mean", "running_var", "num_batches_tracked")


def run_one(model: str, dataset: str, seed: int, out: Path, overrides: list[str]) -> dict:
    run_dir = out / dataset / model / f"seed{seed}"
    cmd = [sys.executable, "main.py", "task=classification", f"model={model}", *DATASETS[dataset],
           f"seed={seed}", "trainer.progress=false", f"hydra.run.dir={run_dir}", *overrides]
    log = (out / dataset / model)
    log.mkdir(parents=True, exist_ok=True)
    with open(log / f"seed{seed}.log", "w") as f:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"  {dataset}/{model}/seed{seed} failed: see {log / f'seed{seed}.log'}")
        return {}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    params = sum(v.numel() for k, v in state["model"].items()
                 if v.is_floating_point() and not k.endswith(NOT_PARAMETERS))
    batch = _batch_size(run_dir)
    return {"metrics": metrics, "params": params, "peak_mib": usage.ru_maxrss / 1024,
            "samples_s": metrics["steps"] * batch / max(metrics["train_seconds"], 1e-9)}


def _batch_size(run_dir: Path) -> int:
    from omegaconf import OmegaConf
    return int(OmegaConf.load(run_dir / ".hydra" / "config.yaml").trainer.batch_size)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _class(runs: list[dict], name: str) -> str:
    per = [r["metrics"]["test"]["per_class"].get(name, {}) for r in runs]
    se = statistics.mean(p.get("sensitivity") or 0.0 for p in per)
    ppv = statistics.mean(p.get("ppv") or 0.0 for p in per)
    return f"{se:.3f} / {ppv:.3f}"


def table(results: dict, dataset: str, seeds: list[int]) -> str:
    ecg = dataset == "ecg"
    head = ["model", "accuracy", "macro-F1"] + (["S Se / +P", "V Se / +P"] if ecg else []) + \
        ["parameters", "samples/s", "peak MiB", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, runs in results.items():
        runs = [r for r in runs if r]
        if not runs:
            lines.append(f"| {model} | failed |" + " |" * (len(head) - 2))
            continue
        row = [model, _mean_std([r["metrics"]["test"]["accuracy"] for r in runs]),
               _mean_std([r["metrics"]["test"]["macro_f1"] for r in runs])]
        if ecg:
            row += [_class(runs, "S"), _class(runs, "V")]
        row += [f"{runs[0]['params']:,}", f"{statistics.mean(r['samples_s'] for r in runs):.0f}",
                f"{max(r['peak_mib'] for r in runs):.0f}", str(len(runs))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=f"outputs/bench_backbones/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.num_threads=1")
    args = ap.parse_args()
    unknown = set(args.datasets.split(",")) - set(DATASETS)
    if unknown:
        sys.exit(f"unknown dataset(s) {sorted(unknown)}; choose from {', '.join(DATASETS)}")
    out = Path(args.out).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    summary = []
    for dataset in args.datasets.split(","):
        results = {}
        for model in args.models.split(","):
            results[model] = [run_one(model, dataset, s, out, args.overrides) for s in seeds]
        summary.append(f"### {dataset}\n\n{table(results, dataset, seeds)}\n")
        print(summary[-1], flush=True)
    (out / "summary.md").write_text("\n".join(summary))
    print(f"written to {out / 'summary.md'}")


if __name__ == "__main__":
    main()
