#!/usr/bin/env python
"""Turn a Hydra multirun directory into a table of mean ± std per setting.

    python scripts/summarise.py outputs/multirun/2026-11-29_10-00-00 [--metrics test.accuracy test.macro_f1]

Runs are grouped by their command-line overrides (.hydra/overrides.yaml) minus `seed` and the
resume switches `trainer.resume*` (and minus the keys given to --pool, e.g. `--pool
data.val_records` to pool cross-validation folds into one row per setting); each metric is a
dotted path into metrics.json. Writes summary.md and summary.csv into the multirun directory
and prints the markdown table. An Optuna search's directory gives one row per trial.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import yaml

DEFAULT_METRICS = ["test.accuracy", "test.macro_f1", "test.auroc"]
IGNORED_OVERRIDES = ("seed=", "hydra.", "trainer.progress=", "trainer.resume=",
                     "trainer.resume_allow_changes=")


def find_runs(root: Path):
    for metrics in sorted(root.rglob("metrics.json")):
        run = metrics.parent
        overrides_file = run / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        yield run, overrides or [], json.loads(metrics.read_text())


def lookup(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d if isinstance(d, (int, float)) else None


def summarise(root: Path, metrics: list[str], pool: tuple[str, ...] = ()):
    ignored = IGNORED_OVERRIDES + tuple(f"{k}=" for k in pool)
    groups: dict[str, list[dict]] = defaultdict(list)
    for _run, overrides, values in find_runs(root):
        key = " ".join(o for o in overrides if not o.lstrip("+~").startswith(ignored)) or "(defaults)"
        groups[key].append(values)
    rows = []
    for setting, runs in sorted(groups.items()):
        row = {"setting": setting, "runs": len(runs)}
        for m in metrics:
            vals = [v for v in (lookup(r, m) for r in runs) if v is not None and not math.isnan(v)]
            row[m] = _mean_std(vals)
        rows.append(row)
    return rows


def _mean_std(vals):
    if not vals:
        return (float("nan"), float("nan"), 0)
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return (mean, std, len(vals))


def to_markdown(rows, metrics) -> str:
    head = "| setting | runs | " + " | ".join(metrics) + " |"
    sep = "|---|---|" + "---|" * len(metrics)
    lines = [head, sep]
    for r in rows:
        cells = [f"{r[m][0]:.4f} ± {r[m][1]:.4f}" if r[m][2] else "—" for m in metrics]
        lines.append(f"| {r['setting']} | {r['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows, metrics, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "runs"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
        for r in rows:
            w.writerow([r["setting"], r["runs"]] + [x for m in metrics for x in r[m][:2]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("multirun_dir", type=Path)
    p.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS)
    p.add_argument("--pool", nargs="+", default=[], metavar="KEY",
                   help="config keys whose values are pooled into one row (e.g. data.val_records)")
    args = p.parse_args(argv)
    if not args.multirun_dir.is_dir():
        print(f"{args.multirun_dir} is not a directory; give a Hydra multirun output folder", file=sys.stderr)
        return 2
    rows = summarise(args.multirun_dir, args.metrics, tuple(args.pool))
    if not rows:
        print(f"no metrics.json found under {args.multirun_dir}", file=sys.stderr)
        return 1
    md = to_markdown(rows, args.metrics)
    (args.multirun_dir / "summary.md").write_text(md + "\n")
    write_csv(rows, args.metrics, args.multirun_dir / "summary.csv")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
