#!/usr/bin/env python
"""TF-C on TFC/Epilepsy: does TF-C pretraining help the paper's fine-tuning?

Every row is the real command ``python main.py experiment=tfc_epilepsy ...`` (run in-process
through main.run, one run directory each) for seeds 0, 1, 2:

    tfc_pretrained + paper fine-tune     experiment=tfc_epilepsy
    random init + paper fine-tune        ... trainer.max_steps=0 (no pretraining step)
    tfc_pretrained + linear-head finetune ... task.protocol=finetune

Pretraining uses the 60 training series (no labels), fine-tuning the same 60 labelled ones,
and the 20 validation series are the reported set (test.pt is not shipped): nothing selects
on them. Prints accuracy / macro-F1 per run and mean ± std per row.

    DATA_DIR=../shared/data python scripts/ssl/tfc_epilepsy.py [extra overrides ...]

Run directories: outputs/ssl/tfc_epilepsy/<row>/seed<k> (override with --out).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from main import run  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402

ROWS = {
    "tfc_pretrained+paper_finetune": [],
    "random_init+paper_finetune": ["trainer.max_steps=0"],
    "tfc_pretrained+linear_head_finetune": ["task.protocol=finetune"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="outputs/ssl/tfc_epilepsy")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.device=cpu")
    args = ap.parse_args()
    env = [f"paths.data_dir={os.environ['DATA_DIR']}"] if os.environ.get("DATA_DIR") else []
    results: dict[str, list[dict]] = {}
    for row, extra in ROWS.items():
        for seed in [int(s) for s in args.seeds.split(",")]:
            overrides = ["experiment=tfc_epilepsy", f"seed={seed}", "trainer.progress=false",
                         *env, *extra, *args.overrides]
            run_dir = Path(args.out) / row / f"seed{seed}"
            (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
            cfg = compose_cfg(overrides)
            (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
            t0 = time.time()
            res = run(cfg, run_dir)
            split = res.get("test_split", "test")
            m = res[split]
            results.setdefault(row, []).append(m)
            print(json.dumps({"row": row, "seed": seed, "reported_on": split,
                              "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
                              "seconds": round(time.time() - t0, 1),
                              "command": "python main.py " + " ".join(overrides)}), flush=True)
    print("\n| run | accuracy | macro-F1 |\n|---|---|---|")
    for row, ms in results.items():
        print(f"| {row} | {_ms([m['accuracy'] for m in ms])} | {_ms([m['macro_f1'] for m in ms])} |")


def _ms(values) -> str:
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


if __name__ == "__main__":
    main()
