#!/usr/bin/env python
"""Fetch the datasets the tests, examples and benchmarks use into the data directory, from
their official sources, each file verified before it is used (MIT-BIH and ETT by size and
sha256, UCR/UEA archives by the archive catalog's sizes); the ones without a public download
are listed with where to get them.

    python scripts/fetch_data.py                       # all of them, into $DATA_DIR or ./dataset
    python scripts/fetch_data.py mitdb ucr:ECG200      # some of them
    python scripts/fetch_data.py --data-dir /data/ts --list

Exit status 0 when every asked dataset is present afterwards, 1 otherwise.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_provider import forecast_data, mitdb_files, ucr_uea  # noqa: E402
from data_provider.mitdb_manifest import MITDB_FILES  # noqa: E402
from utils.download import DownloadError, fetch, sha256_of  # noqa: E402

UCR = ["ECG200", "ECG5000", "GunPoint", "Coffee", "ArrowHead", "ItalyPowerDemand"]
UEA = ["BasicMotions", "JapaneseVowels", "AtrialFibrillation", "Epilepsy"]
ETT = ["ETTh1", "ETTm1"]              # ETTh2 and ETTm2 download too, when named
# datasets without a public file to download: where a user gets them
MANUAL = {
    "custom:exchange_rate": ("forecast/exchange_rate/exchange_rate.csv", forecast_data.CUSTOM_SOURCE),
    "custom:illness": ("forecast/illness/national_illness.csv", forecast_data.CUSTOM_SOURCE),
    "tfc:Epilepsy": ("TFC/Epilepsy/{train,val,test}.pt",
                     "the TF-C repository's datasets (https://github.com/mims-harvard/TFC-pretraining)"),
}
ALL = ["mitdb", *(f"ucr:{n}" for n in UCR), *(f"uea:{n}" for n in UEA),
       *(f"ett:{n}" for n in ETT), *MANUAL]
KNOWN = ALL + [f"ett:{n}" for n in forecast_data.ETT_FILES if n not in ETT] + ["ucr:<name>", "uea:<name>"]


def fetch_mitdb(data_dir: Path) -> str:
    folder = data_dir / "mitdb"
    records = sorted({int(name.split(".")[0]) for name in MITDB_FILES})
    fetched = bool(mitdb_files.missing_files(folder, records))
    if fetched:
        mitdb_files.ensure_records(folder, records, download=True,
                                   source_url="https://physionet.org/files/mitdb/1.0.0/")
    # every file, also those already there, is the official one
    mitdb_files.verify_records(folder, mitdb_files.record_digests(folder, records), verify=True)
    return f"downloaded to {folder}" if fetched else "present (sha256 verified)"


def fetch_archive(data_dir: Path, family: str, name: str) -> str:
    archive = family.upper()
    if ucr_uea.locate(data_dir / archive / name, name) is not None:
        return "present"
    cfg = OmegaConf.load(REPO / "conf" / "data" / f"{family}.yaml").data
    cfg.name = name
    return f"downloaded to {ucr_uea.download_dataset(data_dir / archive, archive, name, cfg)}"


def fetch_ett(data_dir: Path, name: str) -> str:
    path = data_dir / "forecast" / "ETT-small" / f"{name}.csv"
    size, sha = forecast_data.ETT_FILES[name]
    if path.is_file():
        if sha256_of(path) != sha:
            raise ValueError(f"{path} is not the official file (its sha256 differs); delete it "
                             "and fetch it again")
        return "present (sha256 verified)"
    fetch(forecast_data.ETT_URL.format(name=name), path, size=size, sha256=sha)
    return f"downloaded to {path}"


def fetch_one(data_dir: Path, key: str) -> tuple[bool, str]:
    family, _, name = key.partition(":")
    if key in MANUAL:
        pattern, source = MANUAL[key]
        present = all((data_dir / p).is_file() for p in _expand(pattern)[:2])
        return present, ("present" if present else
                         f"not downloadable: get it from {source} into {data_dir / pattern}")
    try:
        if family == "mitdb":
            return True, fetch_mitdb(data_dir)
        if family in ("ucr", "uea"):
            return True, fetch_archive(data_dir, family, name)
        if family == "ett" and name in forecast_data.ETT_FILES:
            return True, fetch_ett(data_dir, name)
    except (DownloadError, OSError, ValueError) as err:
        return False, f"failed: {err}"
    return False, f"unknown dataset '{key}'; --list shows the known ones"


def _expand(pattern: str) -> list[str]:
    if "{" not in pattern:
        return [pattern]
    head, rest = pattern.split("{", 1)
    options, tail = rest.split("}", 1)
    return [head + o + tail for o in options.split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="*", help="e.g. mitdb ucr:ECG200 uea:BasicMotions ett:ETTh1 (default: all)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR") or REPO / "dataset"),
                    help="the data directory (default: $DATA_DIR, else ./dataset)")
    ap.add_argument("--list", action="store_true", help="print the datasets it knows and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(KNOWN))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data_dir = args.data_dir.resolve()
    ok = True
    for key in args.datasets or ALL:
        present, status = fetch_one(data_dir, key)
        ok &= present
        print(f"{key:<24} {status}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
