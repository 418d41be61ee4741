#!/usr/bin/env python
"""Peak memory of one command with data.memory_map=false and =true.

    DATA_DIR=../shared/data python scripts/bench/memory.py                  # the full run
    DATA_DIR=../shared/data python scripts/bench/memory.py --quick          # 20 steps, knn
    DATA_DIR=../shared/data python scripts/bench/memory.py --steps 100 trainer.num_workers=2
    DATA_DIR=../shared/data python scripts/bench/memory.py --steps 20 \
        --command task=classification model=resnet1d data=ecg
    python scripts/bench/memory.py --synthetic 1          # 1 GiB of series, no dataset needed

Each setting runs ``python main.py model=timesurl data=ecg [overrides]`` (the headline
pretraining run; ``--command`` gives another) in a child process and reports:

- peak RSS: the kernel's high-water mark of the child's resident memory (``ru_maxrss`` from
  wait4, the largest of the child and its worker processes). It counts the pages of mapped
  files the run has read, which the kernel may drop at any time;
- peak anonymous: the largest sum, over the child and its workers, of the memory that is not
  backed by a file (RssAnon in /proc/<pid>/status, sampled every 50 ms): what the run holds
  and cannot give back; in all, and up to the end of training (before the downstream
  protocol encodes the labelled splits and fits its classifier);

and the wall time and test accuracy (equal in both settings). The preprocessing caches
(.npz and .npy) are built first, so neither measured run preprocesses.

``--synthetic GIB`` measures the data side alone where the data is large: a synthetic float32
series file of GIB GiB goes through the pretraining set (data_provider/pretraining.py) and
200 shuffled training batches, read into memory or memory-mapped.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

HEADLINE = ["model=timesurl", "data=ecg"]
SAMPLE_S = 0.05
EPOCH_LINE = re.compile(r"epoch \d+ \| train loss")


def status_kib(pid: int, field: str) -> int:
    """A ``field:  N kB`` line of /proc/<pid>/status (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (DataLoader workers), from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                pass
    return out


def run_child(cmd: list[str], cwd: Path | str = REPO) -> dict:
    """Run ``cmd``: its wall time, exit status, peak RSS (wait4's ru_maxrss; Popen.wait would
    reap the child without it) and peak anonymous memory sampled over its process tree, in
    all and up to the end of training (the last "epoch N | train loss" line it logs)."""
    t0 = time.time()
    # Hydra logs to stdout; both streams are read for the epoch lines
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, epoch_ends, samples = [], [], []
    # read the log in a thread: the epoch lines mark the phases, and a full pipe never blocks the run
    reader = threading.Thread(target=read_log, args=(proc.stdout, lines, epoch_ends), daemon=True)
    reader.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        samples.append((time.time(), sum(status_kib(p, "RssAnon") for p in process_tree(proc.pid))))
        time.sleep(SAMPLE_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    trained = epoch_ends[-1] if epoch_ends else float("inf")
    return {"seconds": time.time() - t0, "rc": proc.returncode, "peak_rss_kib": usage.ru_maxrss,
            "peak_anon_kib": max((m for _, m in samples), default=0),
            "train_anon_kib": max((m for t, m in samples if t <= trained), default=0),
            "log": "".join(lines)}


def read_log(stream, lines: list, epoch_ends: list) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        lines.append(line)
        if EPOCH_LINE.search(line):
            epoch_ends.append(time.time())


def prepare_caches(overrides: list[str]) -> None:
    """Build the .npz and .npy caches of the data these overrides select."""
    from data_provider.data_factory import data_provider
    from utils.compose import compose_cfg
    for mm in ("false", "true"):
        data_provider(compose_cfg([*overrides, f"data.memory_map={mm}", "trainer.progress=false"]))


def accuracy_of(run_dir: Path):
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("test", {}).get("accuracy")


def table(rows: list) -> None:
    print(f"\n{'data.memory_map':<16}{'peak RSS':>10}{'peak anon':>11}{'anon to end of training':>25}"
          f"{'wall s':>8}{'test acc':>10}{'exit':>6}   (MiB)")
    for mm, r, acc in rows:
        acc_s = "-" if acc is None else f"{acc:.4f}"
        trained = "-" if r["train_anon_kib"] is None else f"{r['train_anon_kib'] / 1024:.0f}"
        print(f"{mm:<16}{r['peak_rss_kib'] / 1024:>10.0f}{r['peak_anon_kib'] / 1024:>11.0f}"
              f"{trained:>25}{r['seconds']:>8.0f}{acc_s:>10}{r['rc']:>6}")


def compare_runs(overrides: list[str]) -> list:
    """The command with data.memory_map=false, then =true: one row each for ``table``."""
    prepare_caches(overrides)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        for mm in ("false", "true"):
            run_dir = Path(tmp) / f"memory_map_{mm}"
            cmd = [sys.executable, "main.py", *overrides, f"data.memory_map={mm}",
                   f"hydra.run.dir={run_dir}"]
            print("$", " ".join(cmd[1:]), flush=True)
            r = run_child(cmd)
            if r["rc"] != 0:
                print(r["log"][-3000:], file=sys.stderr)
            rows.append((mm, r, accuracy_of(run_dir)))
    return rows


def compare_synthetic(gib: float, steps: int) -> list:
    """A float32 series file of ``gib`` GiB, through the pretraining set and ``steps``
    shuffled batches of 128, read into memory (false) or memory-mapped (true)."""
    import numpy as np
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        path = Path(tmp) / "x.npy"
        n, length = int(gib * 1024**3) // (256 * 4), 256
        x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, length))
        for start in range(0, n, 65536):             # written in chunks: never all in memory
            stop = min(start + 65536, n)
            x[start:stop] = np.random.default_rng(start).normal(size=(stop - start, length))
        x.flush()
        del x
        for mm in ("false", "true"):
            cmd = [sys.executable, __file__, "--synthetic-child", str(path), mm, str(steps)]
            print("$", " ".join(cmd[1:]), flush=True)
            r = run_child(cmd)
            if r["rc"] != 0:
                print(r["log"][-3000:], file=sys.stderr)
            rows.append((mm, {**r, "train_anon_kib": None}, None))
    return rows


def synthetic_child(path: str, memory_map: bool, steps: int) -> None:
    """The data side of a pretraining run on the series file ``path``: the pretraining set,
    then ``steps`` training batches."""
    import numpy as np
    from data_provider.base import ArrayDataset, DataBundle
    from data_provider.loader import make_loader
    from data_provider.memmap import Mapped, MappedFile, MemmapDataset
    from data_provider.pretraining import pretraining_data
    file = MappedFile(path)
    ids = np.arange(file.shape[0], dtype=np.int64)
    ds = (MemmapDataset({"x": Mapped(file, channel_axis=True), "patient_id": ids}, ids)
          if memory_map else ArrayDataset(x=np.load(path)[:, :, None], patient_id=ids))
    train = pretraining_data(DataBundle(splits={"train": ds}), ["train"], None).splits["train"]
    for i, _ in enumerate(make_loader(train, batch_size=128, train=True, seed=0)):
        if i + 1 == steps:
            break


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="more key=value overrides for both runs")
    p.add_argument("--steps", type=int, help="a short version: trainer.max_steps=N")
    p.add_argument("--quick", action="store_true", help="--steps 20 task.protocol=knn (the headline's short version)")
    p.add_argument("--command", nargs="+", default=HEADLINE,
                   help="main.py arguments, given last (default: %(default)s)")
    p.add_argument("--synthetic", type=float, metavar="GIB",
                   help="instead of a run: the pretraining set and --steps batches (default 200) "
                        "of a synthetic series file of GIB GiB")
    p.add_argument("--synthetic-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.synthetic_child:
        path, mm, steps = args.synthetic_child
        synthetic_child(path, mm == "true", int(steps))
        return 0
    if args.synthetic:
        rows = compare_synthetic(args.synthetic, args.steps or 200)
    else:
        steps = 20 if args.quick and args.steps is None else args.steps
        overrides = [*args.command, "trainer.progress=false", *args.overrides]
        if steps is not None:
            overrides.append(f"trainer.max_steps={steps}")
        if args.quick:
            overrides.append("task.protocol=knn")
        rows = compare_runs(overrides)
    table(rows)
    return max(r["rc"] for _, r, _ in rows)


if __name__ == "__main__":
    sys.exit(main())
