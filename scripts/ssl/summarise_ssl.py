#!/usr/bin/env python
"""Table of the self-supervised benchmark (scripts/ssl/benchmark.sh): one row per dataset,
method, protocol and label fraction with macro-F1 and accuracy (mean ± std over seeds) and
the pretraining wall time (seconds, mean over seeds: metrics.json "train_seconds").

    python scripts/ssl/summarise_ssl.py outputs/ssl_benchmark/<stamp>

Reads every benchmark.json ({"data", "method", "seed"}) with the metrics.json beside it (the
main evaluation under "test", the others under "evaluations"); writes summary.md and
summary.csv into that directory and prints the markdown tables. The last table sets each
method beside the random encoder of its architecture (macro-F1 gain in points of the seed
means, and how many methods gain at least ``--margin``).
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

METHOD_ORDER = ["random", "random-ts2vec", "simclr", "moco", "byol", "simsiam", "dino", "instdisc", "hybrid",
                "cpc", "tfc", "comet", "mae", "wav2vec2", "bert", "gpt", "ts2vec", "timesurl"]
# the random row of each method's architecture: the methods on the TS2Vec encoder share
# random-ts2vec, those with their own networks have random-<method>, the rest the shared
# ResNet ("random"). A method run with another model.encoder needs its own random row.
TS2VEC_ENCODER = {"ts2vec", "timesurl", "comet"}


def random_row_of(method: str, methods: set) -> str:
    base = method.split(" (")[0]          # "simclr (constant lr)" -> simclr
    if base in TS2VEC_ENCODER:
        return "random-ts2vec"
    return f"random-{base}" if f"random-{base}" in methods else "random"


def collect(root: Path) -> dict:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for info_file in sorted(root.rglob("benchmark.json")):
        metrics_file = info_file.parent / "metrics.json"
        if not metrics_file.is_file():
            continue
        info = json.loads(info_file.read_text())
        metrics = json.loads(metrics_file.read_text())
        for result in [metrics.get("test", {}), *metrics.get("evaluations", {}).values()]:
            if "protocol" not in result:
                continue
            key = (info["data"], info["method"], result["protocol"], float(result["label_fraction"]))
            groups[key].append({"macro_f1": result.get("macro_f1"), "accuracy": result.get("accuracy"),
                                "seconds": metrics.get("train_seconds")})
    return groups


def mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def order(key: tuple) -> tuple:
    data, method, protocol, frac = key
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return (data, protocol, -frac, rank, method)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--margin", type=float, default=5.0,
                        help="macro-F1 points a method must gain over its random encoder (default 5)")
    args = parser.parse_args(argv)
    groups = collect(args.root)
    if not groups:
        print(f"no finished benchmark runs (benchmark.json + metrics.json) under {args.root}", file=sys.stderr)
        return 1
    header = ["data", "method", "protocol", "label fraction", "seeds", "macro-F1", "accuracy",
              "pretrain s"]
    rows = []
    for key in sorted(groups, key=order):
        runs = groups[key]
        secs = [r["seconds"] for r in runs if r["seconds"] is not None]
        rows.append([key[0], key[1], key[2], f"{key[3]:g}", str(len(runs)),
                     mean_std([r["macro_f1"] for r in runs]), mean_std([r["accuracy"] for r in runs]),
                     f"{statistics.mean(secs):.0f}" if secs else "–"])
    table = markdown(header, rows)
    compact = markdown(*per_method(groups))
    header_vs, rows_vs, counts = versus_random(groups, args.margin)
    compact += "\n\n" + markdown(header_vs, rows_vs) + "".join(f"\n\n{c}" for c in counts)
    (args.root / "summary.md").write_text(table + "\n\n" + compact + "\n")
    with open(args.root / "summary.csv", "w", newline="") as f:
        csv.writer(f).writerows([header] + rows)
    print(table + "\n\n" + compact)
    return 0


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def evaluations(groups: dict) -> list[tuple]:
    """Every (protocol, label fraction) of the benchmark, by protocol then larger fractions first."""
    return sorted({(k[2], k[3]) for k in groups}, key=lambda e: (e[0], -e[1]))


def per_method(groups: dict) -> tuple[list, list]:
    """One row per dataset and method, one column per protocol@fraction holding
    "macro-F1 / accuracy" (means over seeds), then the seeds and pretraining seconds."""
    evals = evaluations(groups)
    header = ["data", "method"] + [f"{p}@{f:g} F1 / acc" for p, f in evals] + ["seeds", "pretrain s"]
    rows = []
    for data, method in sorted({k[:2] for k in groups}, key=lambda k: order((*k, "", 0))):
        row, seeds, secs = [data, method], 0, []
        for p, f in evals:
            runs = groups.get((data, method, p, f), [])
            seeds = max(seeds, len(runs))
            secs += [r["seconds"] for r in runs if r["seconds"] is not None]
            f1 = [r["macro_f1"] for r in runs if r["macro_f1"] is not None]
            acc = [r["accuracy"] for r in runs if r["accuracy"] is not None]
            row.append(f"{statistics.mean(f1):.3f} / {statistics.mean(acc):.3f}" if f1 and acc else "–")
        rows.append(row + [str(seeds), f"{statistics.mean(secs):.0f}" if secs else "–"])
    return header, rows


def versus_random(groups: dict, margin: float) -> tuple[list, list, list]:
    """Per dataset and method, the macro-F1 gain (points, seed means) over the random encoder
    of its architecture at every protocol@fraction both have; and per dataset and evaluation
    the count of methods gaining at least ``margin`` points."""
    def f1(key):
        values = [r["macro_f1"] for r in groups.get(key, []) if r["macro_f1"] is not None]
        return statistics.mean(values) if values else None
    evals = evaluations(groups)
    header = ["data", "method", "random row"] + [f"{p}@{f:g} gain" for p, f in evals]
    rows, counts = [], []
    for data in sorted({k[0] for k in groups}):
        methods = {k[1] for k in groups if k[0] == data}
        tally = {e: [0, 0] for e in evals}
        for method in sorted((m for m in methods if not m.startswith("random")),
                             key=lambda m: order((data, m, "", 0))):
            ref = random_row_of(method, methods)
            row = [data, method, ref]
            for p, frac in evals:
                mine, theirs = f1((data, method, p, frac)), f1((data, ref, p, frac))
                if mine is None or theirs is None:
                    row.append("–")
                    continue
                gain = round(100 * (mine - theirs), 1) + 0.0     # + 0.0: no "-0.0"
                tally[(p, frac)][0] += gain >= margin
                tally[(p, frac)][1] += 1
                row.append(f"{gain:+.1f}")
            rows.append(row)
        counts += [f"{data} {p}@{frac:g}: {k} of {n} methods gain at least {margin:g} points of "
                   f"macro-F1 over their random encoder" for (p, frac), (k, n) in tally.items() if n]
    return header, rows, counts


if __name__ == "__main__":
    sys.exit(main())
