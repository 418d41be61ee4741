#!/usr/bin/env python
"""Where a run's time goes: its training steps under torch.profiler (operators by self time)
and its evaluation - test(): the evaluation passes, or for task=pretrain the encoding and the
downstream protocol - under Python's cProfile (functions by cumulative time), with the wall
time of each phase.

    DATA_DIR=<data> python scripts/bench/profile_run.py model=ts2vec data=ucr data.name=ECG200
    DATA_DIR=<data> python scripts/bench/profile_run.py model=timesurl data=ecg --steps 8 --top 20
    DATA_DIR=<data> python scripts/bench/profile_run.py task=classification model=resnet1d data=ecg --no-eval

The run trains ``--warmup`` + ``--steps`` optimizer steps (trainer.max_steps is set to that),
the profiler recording the last ``--steps``; arguments other than the options are Hydra
overrides, as for main.py. ``--trace <file.json>`` also writes a Chrome trace of the
recorded steps (chrome://tracing, Perfetto).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exp import get_exp_class  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402
from utils.seed import seed_everything  # noqa: E402


def profiled_training(exp, warmup: int, trace: str | None):
    """exp.train() with the profiler recording every optimizer step after the first ``warmup``;
    returns the profile and the training wall time."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if exp.device.type == "cuda" else [])
    prof = profile(activities=activities)
    step_hook = exp._after_optimizer_step

    def after_step():
        step_hook()
        if exp.state["step"] == warmup:
            prof.start()

    exp._after_optimizer_step = after_step
    if warmup == 0:
        prof.start()
    t0 = time.perf_counter()
    exp.train()
    seconds = time.perf_counter() - t0
    prof.stop()
    if trace:
        prof.export_chrome_trace(trace)
    return prof, seconds


def profiled_evaluation(exp, top: int) -> tuple[str, float]:
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    exp.test()
    profiler.disable()
    seconds = time.perf_counter() - t0
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue(), seconds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--steps", type=int, default=10, help="profiled optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="steps run before the profiled ones")
    p.add_argument("--top", type=int, default=15, help="rows of each table")
    p.add_argument("--no-eval", action="store_true", help="profile the training steps only")
    p.add_argument("--trace", help="write a Chrome trace of the profiled steps to this file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    total = args.warmup + args.steps
    cfg = compose_cfg([*args.overrides, f"trainer.max_steps={total}", "trainer.max_epochs=null",
                       "trainer.progress=false", "trainer.patience=null"])
    seed_everything(cfg.seed)
    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        exp = get_exp_class(str(cfg.task.name))(cfg, run_dir)
        setup = time.perf_counter() - t0
        prof, train_seconds = profiled_training(exp, args.warmup, args.trace)
        print(f"setup (data + model) {setup:.1f} s | training {total} steps {train_seconds:.1f} s "
              f"(threads {torch.get_num_threads()}, device {exp.device})")
        sort = "self_cuda_time_total" if exp.device.type == "cuda" else "self_cpu_time_total"
        print(f"\noperators of the last {args.steps} training steps, by self time:")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.top))
        if not args.no_eval:
            table, eval_seconds = profiled_evaluation(exp, args.top)
            print(f"evaluation (test()) {eval_seconds:.1f} s; functions by cumulative time:")
            print(table)


if __name__ == "__main__":
    main()
