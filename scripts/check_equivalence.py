"""Do two versions of the framework give the same numbers? Runs a fixed set of short, seeded
experiments - every task and every method family, on the real datasets - and compares their
metrics.json (every field but wall times) and the trained weights in checkpoints/last.pt,
to the last digit. A metric that only this tree reports (added since the other revision) is
listed but is no difference: every figure the other revision reports must be the same.

    # this tree against another revision (checked out in a temporary git worktree)
    DATA_DIR=<data> python scripts/check_equivalence.py --base HEAD~3
    # or record once, change the code, compare later
    DATA_DIR=<data> python scripts/check_equivalence.py --record /tmp/equiv_before
    DATA_DIR=<data> python scripts/check_equivalence.py --against /tmp/equiv_before

Both sides run on this machine with one torch thread (bit-for-bit equality holds for the same
machine and thread count). ``--only NAME ...`` restricts the set; ``--list`` prints it.
``--set OVERRIDE ...`` adds Hydra overrides to this tree's runs only, e.g.
``++optimizer.fused=false`` to leave out a change known to alter float rounding and see
whether anything else moved. Exit status 0 when every run matches, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Tiny encoders keep each run to seconds; the code paths are those of the full-size methods.
SSL_TINY = ["model.repr_dim=16", "model.encoder_kwargs.widths=[16,16]",
            "model.encoder_kwargs.kernel_sizes=[8,3]"]
TS2VEC_TINY = ["model.depth=3", "model.hidden_dims=16", "model.output_dims=32"]
ECG200 = ["data=ucr", "data.name=ECG200"]
MITDB_SMALL = ["data=ecg", "data.ds1_records=[101,118]", "data.val_records=[118]",
               "data.ds2_records=[100]"]
FEW_STEPS = ["trainer.max_steps=6", "trainer.batch_size=32"]
ETTH1 = ["data=ett", "data.name=ETTh1", "data.seq_len=96", "data.label_len=48", "data.pred_len=24"]
ILI = ["data=custom", "data.name=ili", "data.path=forecast/illness/national_illness.csv",
       "data.seq_len=36", "data.label_len=18", "data.pred_len=24"]

# name -> overrides; "{runs}" is the folder holding every run of this side.
RUNS: dict[str, list[str]] = {
    # classification (supervised loop, plateau schedule, mixup on MIT-BIH, UEA multivariate)
    "cls_resnet1d_ecg200": ["task=classification", "model=resnet1d", *ECG200,
                            "model.widths=[16,16,16]", "trainer.max_epochs=3"],
    "cls_transformer_ecg200": ["task=classification", "model=transformer", *ECG200,
                               "model.d_model=16", "model.n_heads=2", "model.n_layers=1",
                               "model.d_ff=32", "trainer.max_epochs=2"],
    "cls_resnet1d_mitdb": ["task=classification", "model=resnet1d", *MITDB_SMALL,
                           "model.widths=[16,16]", "trainer.max_epochs=1",
                           "trainer.batch_size=256"],
    "cls_resnet1d_uea": ["task=classification", "model=resnet1d", "data=uea",
                         "data.name=BasicMotions", "model.widths=[8,8]", "trainer.max_epochs=2"],
    # explanation of the MIT-BIH classifier above
    "explain_mitdb": ["task=explain", "task.checkpoint={runs}/cls_resnet1d_mitdb/checkpoints/best.pt",
                      "data=ecg", "task.samples_per_class=2", "task.figures_per_class=1"],
    # TS2Vec / TimesURL: classification protocols, evaluations, multivariate, forecasting
    "ts2vec_ecg200": ["model=ts2vec", *ECG200, *TS2VEC_TINY, "trainer.max_steps=20",
                      "task.evaluations=[knn:1.0,linear:0.1,logistic]"],
    "ts2vec_uea": ["model=ts2vec", "data=uea", "data.name=BasicMotions", *TS2VEC_TINY,
                   "trainer.max_steps=8"],
    "ts2vec_ett": ["model=ts2vec", *ETTH1, *TS2VEC_TINY, "trainer.max_steps=4",
                   "task.pred_lens=[24,48]", "task.forecast_padding=50"],
    "timesurl_ecg200": ["model=timesurl", *ECG200, *TS2VEC_TINY, "trainer.max_steps=8"],
    "timesurl_mitdb": ["model=timesurl", *MITDB_SMALL, *TS2VEC_TINY, "trainer.max_steps=4",
                       "trainer.batch_size=32"],
    # the siamese / contrastive zoo on the shared encoder
    "simclr_ecg200": ["model=simclr", *ECG200, *SSL_TINY, *FEW_STEPS],
    "moco_ecg200": ["model=moco", *ECG200, *SSL_TINY, *FEW_STEPS, "model.queue_size=64"],
    "byol_ecg200": ["model=byol", *ECG200, *SSL_TINY, *FEW_STEPS, "model.proj_hidden_dim=32",
                    "model.pred_hidden_dim=32", "model.proj_dim=16"],
    "simsiam_ecg200": ["model=simsiam", *ECG200, *SSL_TINY, *FEW_STEPS, "model.proj_dim=32",
                       "model.pred_dim=8"],
    "dino_ecg200": ["model=dino", *ECG200, *SSL_TINY, *FEW_STEPS, "model.out_dim=256",
                    "model.hidden_dim=32", "model.bottleneck_dim=16", "model.n_local_crops=2",
                    "trainer.checkpoint_every=1"],
    "instdisc_ecg200": ["model=instdisc", *ECG200, *SSL_TINY, *FEW_STEPS, "model.nce_k=32",
                        "model.feature_dim=16"],
    "hybrid_ecg200": ["model=hybrid", *ECG200, *SSL_TINY, *FEW_STEPS, "task.label_fraction=0.5",
                      "trainer.max_per_class=20"],
    "simclr_ts2vec_encoder": ["model=simclr", *ECG200, "model.encoder=ts2vec", "model.repr_dim=16",
                              "~model.encoder_kwargs", "+model.encoder_kwargs={hidden_dims:8,depth:2}", *FEW_STEPS,
                              "task.protocol=finetune", "task.protocol_args.finetune.epochs=2"],
    # methods with their own networks
    "cpc_mitdb": ["model=cpc", *MITDB_SMALL, "model.enc_dim=32", "model.context_dim=32",
                  *FEW_STEPS],
    "tfc_mitdb": ["model=tfc", *MITDB_SMALL, "model.proj_hidden=64", "model.proj_dim=32",
                  "trainer.max_epochs=1", *FEW_STEPS],
    "tfc_epilepsy": ["experiment=tfc_epilepsy", "trainer.max_epochs=2",
                     "task.protocol_args.tfc_finetune.epochs=2", "model.proj_hidden=64",
                     "model.proj_dim=32"],
    "comet_mitdb": ["model=comet", *MITDB_SMALL, "model.output_dims=32", "model.hidden_dims=16",
                    "model.depth=3", *FEW_STEPS],
    "mae_mitdb": ["model=mae", *MITDB_SMALL, "model.embed_dim=32", "model.depth=2",
                  "model.num_heads=2", "model.decoder_dim=16", "model.decoder_depth=1",
                  "model.decoder_heads=2", "trainer.max_epochs=1", *FEW_STEPS],
    "wav2vec2_mitdb": ["model=wav2vec2", *MITDB_SMALL, "model.conv_layers=[[32,10,2],[32,3,2],[32,3,2]]",
                       "model.d_model=32", "model.depth=2", "model.num_heads=2", "model.ffn_dim=64",
                       "model.final_dim=16", "model.num_vars=32", "model.conv_pos=16",
                       "model.conv_pos_groups=4", "loss.num_negatives=20", *FEW_STEPS],
    # forecasting
    "patchtst_etth1": ["model=patchtst", *ETTH1, "model.d_model=16", "model.n_heads=2",
                       "model.e_layers=1", "model.d_ff=32", "trainer.max_epochs=1",
                       "trainer.max_steps=20", "trainer.batch_size=64"],
    "patchtst_pretrain_ili": ["model=patchtst_pretrain", "task=forecast", *ILI, "model.d_model=16",
                              "model.n_heads=2", "model.e_layers=1", "model.d_ff=32",
                              "model.patch_len=6", "model.stride=6", "trainer.max_epochs=2"],
    "patchtst_finetune_ili": ["model=patchtst", *ILI, "model.d_model=16", "model.n_heads=2",
                              "model.e_layers=1", "model.d_ff=32", "model.patch_len=6",
                              "model.stride=6", "model.padding_patch=null",
                              "model.pretrained={runs}/patchtst_pretrain_ili/checkpoints/last.pt",
                              "model.freeze_epochs=1", "scheduler=patchtst_finetune",
                              "trainer.max_epochs=2"],
    "informer_etth1": ["model=informer", *ETTH1, "model.d_model=16", "model.n_heads=2",
                       "model.d_ff=32", "trainer.max_epochs=1", "trainer.max_steps=10"],
    "crossformer_etth1": ["model=crossformer", *ETTH1, "model.d_model=16", "model.n_heads=2",
                          "model.d_ff=32", "model.e_layers=2", "trainer.max_epochs=1",
                          "trainer.max_steps=10"],
}
COMMON = ["trainer.device=cpu", "trainer.progress=false", "trainer.num_threads=1", "seed=0"]
# measured wall times differ between any two runs
TIMING_KEYS = ("train_seconds", "seconds")


def run_side(tree: Path, out: Path, names: list[str], data_dir: str,
             extra: list[str] = ()) -> dict[str, str]:
    """Run ``names`` (+ ``extra`` overrides) with the main.py of ``tree``; runs go to
    out/<name>. Returns failures."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HYDRA_FULL_ERROR": "1", "PYTHONHASHSEED": "0"}
    failures = {}
    for name in names:
        run_dir = out / name
        if (run_dir / "metrics.json").is_file():
            continue                                  # recorded already (an interrupted call)
        shutil.rmtree(run_dir, ignore_errors=True)    # a failed earlier attempt of this script
        overrides = [o.replace("{runs}", str(out)) for o in RUNS[name]]
        cmd = [sys.executable, "main.py", *overrides, *COMMON, *extra, f"paths.data_dir={data_dir}",
               f"paths.cache_dir={out / '.cache'}", f"hydra.run.dir={run_dir}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"  {name:<26} {time.perf_counter() - t0:6.1f} s  {status}", flush=True)
        if proc.returncode != 0:
            failures[name] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"
            (out / f"{name}.stderr.txt").write_text(proc.stderr)
    return failures


def _strip_timing(obj):
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items()
                if not any(k == t or k.endswith("_" + t) for t in TIMING_KEYS)}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def _differences(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in base" for k in sorted(set(a) - set(b))]
        for k in sorted(set(a) & set(b)):
            out += _differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return [] if same else [f"{path}: {a!r} != {b!r}"]


def _added_keys(a, b, path="") -> list[str]:
    """Paths of metrics.json keys in ``b`` (this tree) that ``a`` lacks."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return []
    out = [f"{path}/{k}" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        out += _added_keys(a[k], b[k], f"{path}/{k}")
    return out


def _weight_differences(a: Path, b: Path) -> list[str]:
    import torch

    if not a.is_file() and not b.is_file():
        return []
    if not (a.is_file() and b.is_file()):
        return ["checkpoints/last.pt exists on one side only"]
    wa = torch.load(a, map_location="cpu", weights_only=True)["model"]
    wb = torch.load(b, map_location="cpu", weights_only=True)["model"]
    if set(wa) != set(wb):
        return [f"weights: parameter names differ ({sorted(set(wa) ^ set(wb))[:5]} ...)"]
    return [f"weights: {k} differs" for k in wa if not torch.equal(wa[k], wb[k])]


def compare(base: Path, here: Path, names: list[str]) -> list[str]:
    problems = []
    for name in names:
        ma, mb = base / name / "metrics.json", here / name / "metrics.json"
        if not ma.is_file() or not mb.is_file():
            problems.append(f"{name}: metrics.json missing on {'base' if not ma.is_file() else 'this tree'}")
            continue
        mine, theirs = _strip_timing(json.loads(mb.read_text())), _strip_timing(json.loads(ma.read_text()))
        diffs = _differences(theirs, mine)
        added = _added_keys(theirs, mine)
        diffs += _weight_differences(base / name / "checkpoints" / "last.pt",
                                     here / name / "checkpoints" / "last.pt")
        problems += [f"{name}{d if d.startswith('/') else ': ' + d}" for d in diffs[:10]]
        print(f"  {name:<26} {'identical' if not diffs else f'{len(diffs)} difference(s)'}"
              + (f" (new here: {', '.join(added[:4])}{' ...' if len(added) > 4 else ''})" if added else ""))
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--base", metavar="REV", help="git revision to compare this tree against")
    mode.add_argument("--record", metavar="DIR", type=Path, help="run this tree into DIR")
    mode.add_argument("--against", metavar="DIR", type=Path, help="compare this tree with a --record DIR")
    mode.add_argument("--list", action="store_true", help="print the runs and exit")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these (see --list)")
    ap.add_argument("--out", type=Path, help="where this tree's runs go (default: a temporary folder)")
    ap.add_argument("--set", nargs="+", default=[], metavar="OVERRIDE",
                    help="Hydra overrides added to this tree's runs only")
    args = ap.parse_args()
    if args.list:
        for name, overrides in RUNS.items():
            print(f"{name}: {' '.join(overrides)}")
        return 0
    names = args.only or list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        print(f"unknown run(s) {unknown}; --list shows the set", file=sys.stderr)
        return 2
    data_dir = os.environ.get("DATA_DIR")
    if not data_dir or not Path(data_dir).is_dir():
        print("set DATA_DIR to the folder with the datasets (see the README)", file=sys.stderr)
        return 2
    data_dir = str(Path(data_dir).resolve())
    scratch = Path(tempfile.mkdtemp(prefix="equivalence_"))
    if args.record:
        failures = run_side(REPO, args.record.resolve(), names, data_dir, args.set)
        for n, msg in failures.items():
            print(f"{n}: {msg}", file=sys.stderr)
        return 1 if failures else 0
    if args.base:
        base_tree, base_out = scratch / "base_tree", scratch / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base],
                       cwd=REPO, check=True, capture_output=True)
        try:
            print(f"base {args.base}:")
            failures = run_side(base_tree, base_out, names, data_dir)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=REPO,
                           capture_output=True)
    else:
        base_out, failures = args.against.resolve(), {}
    here = (args.out or scratch / "here").resolve()
    print("this tree:")
    failures.update(run_side(REPO, here, names, data_dir, args.set))
    print("comparison:")
    problems = [f"{n}: run failed: {m}" for n, m in failures.items()]
    problems += compare(base_out, here, [n for n in names if n not in failures])
    for p in problems:
        print(f"  {p}")
    print(f"{len(names) - len({p.split(':')[0].split('/')[0] for p in problems})} of {len(names)} "
          f"runs identical; runs kept in {here}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
