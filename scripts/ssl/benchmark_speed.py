#!/usr/bin/env python
"""TS2Vec (or TimesURL) pretraining seconds per iteration and encoding throughput, in the
framework (Exp_Pretrain + the shared loop) beside a bare PyTorch loop of the same model.

    DATA_DIR=../shared/data python scripts/ssl/benchmark_speed.py
    DATA_DIR=../shared/data python scripts/ssl/benchmark_speed.py --model timesurl --iters 50
    DATA_DIR=../shared/data python scripts/ssl/benchmark_speed.py --datasets ecg200 \\
        --overrides trainer.device=cuda

Datasets: UCR ECG200 and MIT-BIH beats (DS1 records, unlabelled; ``--ecg-records`` takes a
few for a quick look). Both sides use the model config's batch size, AdamW and loss, with
the data already on the device (the framework's trainer.data_on_device=auto does this for
small in-memory data; the bare loop indexes one device tensor), and the same warm-up.
Framework seconds/iteration is Exp_Basic.train() continued for N more steps after a warm-up,
divided by N, so it includes the per-epoch checkpoint writes of the real loop. Encoding throughput is
``model.encode`` (averaged weights, max pooling, eval batch size) vs a bare no-grad loop
over the same network.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exp import get_exp_class  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402
from utils.seed import seed_everything  # noqa: E402

DATASETS = {"ecg200": ["data=ucr", "data.name=ECG200"], "mitdb": ["data=ecg"]}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_exp(model: str, data_args: list[str], overrides: list[str], run_dir: str, steps: int):
    cfg = compose_cfg([f"model={model}", *data_args, "trainer.progress=false",
                       f"trainer.max_steps={steps}", "task.embedding_limit=0", *overrides])
    seed_everything(int(cfg.seed))
    return get_exp_class("pretrain")(cfg, run_dir)


def bare_train(model, loss_fn, x, batch_size, iters, device):
    """The textbook loop: random batches of one device tensor, forward, loss, step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(1, iters + 1):
        idx = torch.randint(0, len(x), (batch_size,), device=device)
        batch = {"x": x[idx]}
        out = loss_fn(model(batch), batch)
        loss = out["loss"] if isinstance(out, dict) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_optimizer_step(step)


@torch.no_grad()
def bare_encode(net, x, batch_size):
    net.eval()
    return torch.cat([net(x[i:i + batch_size], "all_true").amax(dim=1)
                      for i in range(0, len(x), batch_size)])


def bench(name: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        exp = build_exp(args.model, DATASETS[name] + (
            [f"data.ds1_records={args.ecg_records}", f"data.val_records=[{args.ecg_records.strip('[]').split(',')[0]}]"]
            if name == "mitdb" and args.ecg_records else []), args.overrides, tmp, args.iters)
        device = exp.device
        x = exp.data.splits["train"].arrays["x"].to(device)
        bs, ebs = exp.budget.batch_size, int(exp.cfg.trainer.eval_batch_size)
        bare_model = copy.deepcopy(exp.model)
        # warm-up both paths (allocator, kernels)
        bare_train(copy.deepcopy(exp.model), exp.criterion, x, bs, args.warmup, device)

        exp.budget = replace(exp.budget, max_steps=args.warmup)   # one-time costs (TensorBoard, files)
        exp.train()
        exp.budget = replace(exp.budget, max_steps=args.warmup + args.iters)
        exp.cfg.trainer.resume = True                    # continue from the warm-up's last.pt
        sync(device)
        t0 = time.perf_counter()
        exp.train()
        sync(device)
        fw_iter = (time.perf_counter() - t0) / max(exp.state["step"] - args.warmup, 1)

        t0 = time.perf_counter()
        bare_train(bare_model, exp.criterion, x, bs, args.iters, device)
        sync(device)
        bare_iter = (time.perf_counter() - t0) / args.iters

        n = min(len(x), args.encode_samples)
        xe = exp.data.splits["train"].arrays["x"][:n]
        t0 = time.perf_counter()
        exp.model.encode(xe, batch_size=ebs)
        sync(device)
        fw_enc = n / (time.perf_counter() - t0)
        xd = xe.to(device)
        t0 = time.perf_counter()
        bare_encode(exp.model.eval_network(), xd, ebs)
        sync(device)
        bare_enc = n / (time.perf_counter() - t0)
    return {"dataset": name, "device": str(device), "series": len(x), "length": x.shape[1],
            "batch": bs, "fw_s_per_iter": fw_iter, "bare_s_per_iter": bare_iter,
            "fw_enc_per_s": fw_enc, "bare_enc_per_s": bare_enc, "encoded": n}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ts2vec", choices=["ts2vec", "timesurl"])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--iters", type=int, default=50, help="timed training iterations")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--encode-samples", type=int, default=5000, help="series encoded for throughput")
    p.add_argument("--ecg-records", default=None, help="e.g. [101,106,108]: a DS1 subset for MIT-BIH")
    p.add_argument("--overrides", nargs="*", default=[], help="extra hydra overrides")
    args = p.parse_args(argv)
    rows = [bench(name, args) for name in args.datasets]
    print(f"\n{args.model}: pretraining s/iteration and encoding series/s (framework vs bare PyTorch)")
    print("| dataset | device | series x length | batch | s/iter framework | s/iter bare | "
          "encode/s framework | encode/s bare |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['device']} | {r['series']} x {r['length']} | {r['batch']} | "
              f"{r['fw_s_per_iter']:.4f} | {r['bare_s_per_iter']:.4f} | {r['fw_enc_per_s']:.0f} | "
              f"{r['bare_enc_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
