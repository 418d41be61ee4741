#!/usr/bin/env python
"""Training seconds per epoch and peak memory of Informer, PatchTST and Crossformer on ETTh1
(multivariate, horizon 96), in the framework loop beside a bare PyTorch loop of the same model.

    DATA_DIR=../shared/data python scripts/forecast/benchmark_speed.py
    DATA_DIR=../shared/data python scripts/forecast/benchmark_speed.py --models patchtst --batches 20
    DATA_DIR=../shared/data python scripts/forecast/benchmark_speed.py --batches 0      # whole epochs

Each model runs with its ETTh1 experiment config (paper sizes, batch size and input length).
The framework side is Exp_Basic._train_epoch (the loop every run uses, progress bars off); the
bare side is the textbook loop: the same dataset, model, Adam and MSE, batches from a random
permutation. Both get a warm-up of a few batches. With --batches N only N batches are timed and
the epoch time is extrapolated from them (the CPU machines are slow). Peak memory: CUDA peak
allocated memory, or on CPU the largest growth of the process's resident set over its size at
the start of the timed batches (sampled every 2 ms by a thread; process-wide, so approximate).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exp import get_exp_class  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402
from utils.seed import seed_everything  # noqa: E402

EXPERIMENTS = {"informer": "experiment=informer_etth1",
               "patchtst": "experiment=patchtst_etth1",
               "crossformer": "experiment=crossformer_etth1"}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak memory of the code inside the ``with`` block, in MiB."""

    def __init__(self, device):
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            self.base = self.peak = rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_mb())
        self.growth = self.peak - self.base


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(exp, model, optimizer, n_batches, batch_size):
    """The textbook loop on the same data; the decoder input is built the same way."""
    ds, dev = exp.data.splits["train"], exp.device
    label_len, pred_len, c_out = (int(exp.meta[k]) for k in ("label_len", "pred_len", "c_out"))
    uses_dec = "x_dec" in exp._inputs
    perm = torch.randperm(len(ds))
    model.train()
    for b in range(n_batches):
        batch = ds.__getitems__(perm[b * batch_size:(b + 1) * batch_size].tolist())
        x, y = batch["x"].to(dev), batch["y"][:, -pred_len:].to(dev)
        if uses_dec:
            dec = torch.cat([x[:, -label_len:], x.new_zeros(len(x), pred_len, x.shape[2])], 1)
            out = model(x, batch["x_mark"].to(dev), dec, batch["y_mark"].to(dev))
        else:
            out = model(x)
        loss = torch.mean((out[..., -c_out:] - y) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def measure(name: str, overrides: list[str], n_batches: int, warmup: int):
    cfg = compose_cfg([EXPERIMENTS[name], "data.pred_len=96", "trainer.progress=false",
                       "logger.log_hparams=false", *overrides])
    seed_everything(int(cfg.seed))
    with tempfile.TemporaryDirectory() as run_dir:
        exp = get_exp_class("forecast")(cfg, run_dir)
        bs = exp.budget.batch_size
        per_epoch = -(-len(exp.data.splits["train"]) // bs)
        n = per_epoch if n_batches <= 0 else min(n_batches, per_epoch)
        dev = exp.device
        bare_model = copy.deepcopy(exp.model)
        bare_opt = torch.optim.Adam(bare_model.parameters(), lr=float(cfg.optimizer.lr))

        def framework(steps):
            exp.state["step"] = 0
            exp.budget = replace(exp.budget, max_steps=steps)
            exp._train_epoch(0)

        rows = {}
        for label, fn in (("framework", framework),
                          ("bare", lambda steps: bare_loop(exp, bare_model, bare_opt, steps, bs))):
            fn(warmup)
            with PeakMemory(dev) as mem:
                t0 = time.perf_counter()
                fn(n)
                sync(dev)
                secs = time.perf_counter() - t0
            rows[label] = (secs / n * per_epoch, mem.peak if dev.type == "cuda" else mem.growth)
        params = sum(p.numel() for p in exp.model.parameters())
    return rows, n, per_epoch, params, str(dev)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="extra hydra overrides, e.g. trainer.device=cuda")
    p.add_argument("--models", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    p.add_argument("--batches", type=int, default=10, help="batches timed per loop (0 = a whole epoch)")
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)
    print(f"ETTh1, features M, horizon 96; torch threads {torch.get_num_threads()}")
    print(f"{'model':12s} {'params':>9s} {'batches':>9s} {'loop':10s} {'s/epoch':>9s} {'peak MiB':>9s}")
    for name in args.models:
        rows, n, per_epoch, params, dev = measure(name, args.overrides, args.batches, args.warmup)
        for label, (sec, mem) in rows.items():
            print(f"{name:12s} {params:9d} {f'{n}/{per_epoch}':>9s} {label:10s} {sec:9.1f} {mem:9.1f}")
        ratio = rows["framework"][0] / rows["bare"][0]
        print(f"{'':12s} framework / bare time: {ratio:.3f}  (device {dev})")


if __name__ == "__main__":
    main()
