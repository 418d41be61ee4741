#!/usr/bin/env python
"""Training throughput (samples/s) of the framework loop beside a bare PyTorch loop with
the same model, data, batch size and optimizer.

    DATA_DIR=../shared/data python scripts/bench/throughput.py model=resnet1d data=ucr data.name=ECG5000
    DATA_DIR=../shared/data python scripts/bench/throughput.py data=ecg --epochs 1

The framework side is Exp_Basic._train_epoch (the loop every run uses: autocast, clipping
check, scheduler, TensorBoard logging, progress bar off); the bare side is the textbook
loop over the same in-memory tensors. Both get one warm-up epoch, then epochs of the two
alternate and the medians are printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exp import get_exp_class  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402
from utils.seed import seed_everything  # noqa: E402


def bare_epoch(model, criterion, optimizer, x, y, batch_size, extra, device):
    model.train()
    perm = torch.randperm(len(x))
    for i in range(0, len(x), batch_size):
        idx = perm[i:i + batch_size]
        xb, yb = x[idx].to(device), y[idx].to(device)
        kw = {k: v[idx].to(device) for k, v in extra.items()}
        optimizer.zero_grad(set_to_none=True)
        loss = criterion({"logits": model(xb, **kw)}, {"y": yb})
        loss.backward()
        optimizer.step()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per loop (alternating)")
    args = p.parse_args(argv)
    # every training sample in every epoch on both sides: no per-class undersampling
    overrides = ["task=classification", "trainer.progress=false", "trainer.max_per_class=null",
                 *args.overrides]
    cfg = compose_cfg(overrides)
    seed_everything(cfg.seed)
    with tempfile.TemporaryDirectory() as run_dir:
        exp = get_exp_class("classification")(cfg, run_dir)
        n = len(exp.data.splits["train"])
        arrays = exp.data.splits["train"].arrays
        extra = {k: arrays[k] for k in exp._extra_inputs if k in arrays}

        def timed(fn):
            t0 = time.perf_counter()
            fn()
            if exp.device.type == "cuda":
                torch.cuda.synchronize()
            return n / (time.perf_counter() - t0)

        epoch = iter(range(10**9))
        run_framework = lambda: exp._train_epoch(next(epoch))  # noqa: E731
        run_bare = lambda: bare_epoch(exp.model, exp.criterion, exp.optimizer, arrays["x"],  # noqa: E731
                                      arrays["y"], cfg.trainer.batch_size, extra, exp.device)
        run_framework(), run_bare()  # warm-up
        # alternate the two so a change in machine load hits both alike; report medians
        framework, bare = [], []
        for _ in range(args.epochs):
            framework.append(timed(run_framework))
            bare.append(timed(run_bare))
        framework, bare = statistics.median(framework), statistics.median(bare)
        exp.tb.close()
    print(f"data={cfg.data.name} model={cfg.model.name} batch={cfg.trainer.batch_size} "
          f"device={exp.device} train samples={n} threads={torch.get_num_threads()}")
    print(f"bare PyTorch loop : {bare:10.1f} samples/s")
    print(f"framework loop    : {framework:10.1f} samples/s")
    print(f"framework overhead: {100 * (bare / framework - 1):+.1f} %")


if __name__ == "__main__":
    main()
