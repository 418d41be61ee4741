#!/usr/bin/env python
"""Training samples per second with 1, 2, ... processes (torchrun; gloo on CPUs, NCCL on
GPUs), the per-process batch fixed, so N processes train a global batch N times larger.

    DATA_DIR=<data> python scripts/bench/scaling.py                       # 1 and 2 CPU processes
    DATA_DIR=<data> python scripts/bench/scaling.py --procs 1 2 4 -- trainer.device=cuda

Each row is one run of ``main.py`` (its own run directory in a temporary folder): samples/s =
steps x batch x processes / the training seconds main.py records (metrics.json
"train_seconds": training and validation epochs, not data loading or the test).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT = ["task=classification", "model=resnet1d", "data=ucr", "data.name=ECG5000",
           "trainer.max_epochs=3", "trainer.batch_size=32", "trainer.progress=false",
           "trainer.patience=null", "logger.log_hparams=false"]


def run(procs: int, overrides: list[str], threads: int, run_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}",
           "--standalone", "main.py", *overrides, f"trainer.num_threads={threads}",
           f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("overrides", nargs="*", help="more overrides (after --)")
    args = ap.parse_args()
    overrides = [*DEFAULT, *args.overrides]
    batch = int(next(o.split("=")[1] for o in reversed(overrides) if o.startswith("trainer.batch_size=")))
    print(f"{' '.join(overrides)}; {args.threads} thread(s) per process")
    print("| processes | global batch | steps | train s | samples/s | speed-up |")
    print("|---|---|---|---|---|---|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.procs:
            m = run(n, overrides, args.threads, Path(tmp) / f"p{n}")
            rate = m["steps"] * batch * n / m["train_seconds"]
            base = base or rate
            print(f"| {n} | {batch * n} | {m['steps']} | {m['train_seconds']:.1f} | {rate:.0f} | "
                  f"{rate / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
