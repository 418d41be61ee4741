#!/usr/bin/env python
"""Milliseconds per training step of one configuration under several settings (precision,
torch.compile, threads...), the same batches for each: where a setting pays on this machine.

    DATA_DIR=<data> python scripts/bench/step_time.py experiment=patchtst_etth1 trainer.num_threads=1 \
        --variant trainer.compile=false --variant trainer.compile=true \
        --variant "trainer.precision=bf16 trainer.compile=false" --variant "trainer.precision=bf16 trainer.compile=true"

Arguments other than the options are Hydra overrides for every variant, as for main.py; each
``--variant`` adds its own (space-separated). A variant builds the run's experiment, takes
``--warmup`` + ``--steps`` training batches of the first epoch (fewer if the epoch is shorter),
runs the warm-up steps (torch.compile compiles there) and times the others; the table gives the
mean step time, the warm-up seconds and the last step's loss.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exp import get_exp_class  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402
from utils.seed import seed_everything  # noqa: E402


def time_steps(overrides: list[str], warmup: int, steps: int) -> dict:
    cfg = compose_cfg([*overrides, "trainer.progress=false"])
    seed_everything(int(cfg.seed))
    torch._dynamo.reset()                    # a compiled variant before must not leave its graphs
    with tempfile.TemporaryDirectory() as run_dir:
        exp = get_exp_class(str(cfg.task.name))(cfg, run_dir)
        exp.model.train()
        batches = []
        for batch in exp._loader("train", train=True, epoch=0):
            batches.append(batch)
            if len(batches) == warmup + steps:
                break
        if len(batches) <= warmup:
            raise SystemExit(f"the first epoch has {len(batches)} batches; lower --warmup")
        t0 = time.perf_counter()
        for batch in batches[:warmup]:
            exp._train_step(batch)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        for batch in batches[warmup:]:
            loss, _, _ = exp._train_step(batch)
        timed = len(batches) - warmup
        return {"ms": (time.perf_counter() - t0) / timed * 1000, "steps": timed,
                "warmup_s": warm, "loss": float(loss)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--variant", action="append", default=[],
                   help="overrides of one variant, space-separated (repeat the option)")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=5, help="steps run before the timed ones")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    variants = args.variant or [""]
    print(f"{'variant':48s} {'ms/step':>9s} {'steps':>6s} {'warm-up s':>10s} {'loss':>8s}")
    for variant in variants:
        r = time_steps([*args.overrides, *variant.split()], args.warmup, args.steps)
        print(f"{variant or '(as given)':48s} {r['ms']:9.1f} {r['steps']:6d} {r['warmup_s']:10.1f} "
              f"{r['loss']:8.4f}", flush=True)


if __name__ == "__main__":
    main()
