#!/usr/bin/env python
"""The classical QRS detectors that wfdb ships (XQRS, and GQRS, a port of PhysioNet's gqrs) on
the MIT-BIH test records, scored as task=detect scores a model: beat by beat as ANSI/AAMI EC57
(150 ms match window, comparison from task.skip_seconds into each record), per record and gross.

Each detector reads the record's first signal (MLII) as stored, at 360 Hz, with its own defaults;
it finds beats but does not classify them, so only the detection figures mean something. Prints a
table and writes the figures as JSON with --out.

    DATA_DIR=<data> python scripts/detect/classical.py [--out classical.json] [--records 100 101]
        [hydra overrides, e.g. task.skip_seconds=0]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_provider.mitdb import split_records  # noqa: E402
from data_provider.mitdb_files import ensure_records  # noqa: E402
from data_provider.mitdb_signal import CLASS_NAMES  # noqa: E402
from data_provider.mitdb_stream import read_leads  # noqa: E402
from utils.compose import compose_cfg, split_overrides  # noqa: E402
from utils.detection.ec57 import compare_record, summarise  # noqa: E402
from utils.paths import inside_data_dir  # noqa: E402
from utils.refusal import refuse_on_error  # noqa: E402


def detect(name: str, signal: np.ndarray, fs: float) -> np.ndarray:
    from wfdb import processing
    if name == "xqrs":
        return np.asarray(processing.xqrs_detect(signal, fs, verbose=False), dtype=np.int64)
    return np.asarray(processing.gqrs_detect(signal, fs), dtype=np.int64)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", nargs="+", default=["xqrs", "gqrs"], choices=["xqrs", "gqrs"])
    ap.add_argument("--records", nargs="+", type=int, default=None,
                    help="records to score (default: the test split, DS2)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    argv = sys.argv[1:] if argv is None else argv
    options, overrides = split_overrides(argv)
    args = ap.parse_args(options)
    cfg = compose_cfg(["model=detr", *overrides])
    records = args.records or split_records(cfg.data)["test"]
    folder = inside_data_dir(str(cfg.paths.data_dir), ("data.subdir", cfg.data.subdir))
    ensure_records(folder, records, download=bool(cfg.data.download), source_url=str(cfg.data.source_url))
    t = cfg.task
    results = {}
    for name in args.detectors:
        per_record, seconds = {}, 0.0
        for r in records:
            record = read_leads(folder / str(r))
            signals, fs, ref, ref_cls = record["signal"], record["fs"], record["sample"], record["cls"]
            t0 = time.perf_counter()
            found = detect(name, signals[:, 0], fs)
            seconds += time.perf_counter() - t0
            per_record[r] = compare_record(ref, ref_cls, found, np.zeros(len(found), dtype=np.int64), fs,
                                           match_seconds=float(t.match_seconds),
                                           skip_seconds=float(t.skip_seconds))
        summary = summarise(per_record, list(CLASS_NAMES))
        results[name] = {"sensitivity": summary["se"], "positive_predictivity": summary["ppv"],
                         "f1": summary["f1"], "seconds": seconds, "per_record": summary["records"]}
        print(f"{name}: Se {summary['se']:.4f}  +P {summary['ppv']:.4f}  F1 {summary['f1']:.4f}  "
              f"({len(records)} records, {seconds:.1f} s)")
        worst = sorted(summary["records"].items(), key=lambda kv: kv[1]["se"] + kv[1]["ppv"])[:5]
        print("  lowest records: " + ", ".join(f"{r} Se {v['se']:.3f} +P {v['ppv']:.3f}" for r, v in worst))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    with refuse_on_error():
        main()
