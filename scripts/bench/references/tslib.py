"""PatchTST, Informer and the Transformer imputer of Time-Series-Library
(github.com/thuml/Time-Series-Library) as vs_reference.py runs them, on ETTh1 (multivariate):
long-term forecasting (input 96, label 48, horizon 96) with the library's ETT scripts' settings
(PatchTST: 1 encoder layer, 2 heads; Informer: 2 encoder layers, 1 decoder layer, ProbSparse
factor 3; both d_model 512, d_ff 2048, dropout 0.1, batch 32, lr 1e-4 halved every epoch,
patience 3), and imputation (``transformer_imputer``: windows of 96, 12.5 % of the values hidden
at random, the library's Transformer_ETTh1.sh settings: 2 encoder layers, d_model 128, d_ff 128,
batch 16, lr 1e-3 halved every epoch, patience 3).

The library runs as its ``run.py --task_name ...`` on the CPU, data loaded in
the process (``--num_workers 0``, as ours), in a scratch directory (it writes checkpoints/ and
results/ under the working directory, and lists ./models, a link to the checkout's). The runner supplies stand-ins for two imports that only
other models and loaders of the library use (``datasets``, ``reformer_pytorch``), sets the
thread count, and replaces the fixed seed run.py draws (2021) by the run's seed. Its training
seconds are the sum of the "Epoch: N cost time" lines (the training steps of each epoch), its
scores the test "mse:…, mae:…" line, on the scaled series as ours (for imputation: over the
hidden values; the library draws its test masks from the run's random state, ours are fixed
per window, so the two sides score different draws of the same masking).
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from scripts.bench.memory import run_child

ENTRY = "run.py"
DATA = "forecast/ETT-small"
DATASETS = ["ETTh1"]
SCORES = ["mse", "mae"]

RUNNER = """
import random, runpy, sys, types
import numpy, torch
checkout, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for name, attr in (("datasets", "load_dataset"), ("reformer_pytorch", "LSHSelfAttention")):
    stub = types.ModuleType(name); setattr(stub, attr, None); sys.modules.setdefault(name, stub)
torch.set_num_threads(threads)
def reseed(fn):
    return lambda s: fn(seed if s == 2021 else s)
random.seed, numpy.random.seed, torch.manual_seed = map(reseed, (random.seed, numpy.random.seed, torch.manual_seed))
sys.path.insert(0, checkout)
sys.argv = ["run.py"] + sys.argv[4:]
runpy.run_path(checkout + "/run.py", run_name="__main__")
"""
EPOCH_TIME = re.compile(r"Epoch: \d+ cost time: ([\d.]+)")
TEST_SCORES = re.compile(r"mse:([\d.e+-]+), mae:([\d.e+-]+)")

FORECAST_REFERENCE = ["--task_name", "long_term_forecast", "--seq_len", "96", "--label_len", "48",
                      "--pred_len", "96"]
FORECAST_OURS = ["data.seq_len=96", "data.label_len=48", "data.pred_len=96"]

# per model: the library's arguments and ours for the same network and recipe
SETTINGS = {
    "patchtst": {
        "title": "PatchTST (thuml/Time-Series-Library)",
        "reference": [*FORECAST_REFERENCE, "--model", "PatchTST", "--e_layers", "1", "--d_layers",
                      "1", "--factor", "3", "--n_heads", "2"],
        "ours": ["experiment=patchtst_etth1", "scheduler=informer_type1", "model.d_model=512",
                 "model.n_heads=2", "model.e_layers=1", "model.d_ff=2048", "model.dropout=0.1",
                 "model.head_dropout=0.1", "model.res_attention=false", "trainer.batch_size=32",
                 "trainer.patience=3", *FORECAST_OURS],
    },
    "informer": {
        "title": "Informer (thuml/Time-Series-Library)",
        "reference": [*FORECAST_REFERENCE, "--model", "Informer", "--e_layers", "2", "--d_layers",
                      "1", "--factor", "3"],
        "ours": ["model=informer", "model.factor=3", "model.dropout=0.1", "model.mix=false",
                 *FORECAST_OURS],
    },
    "transformer_imputer": {
        "title": "Transformer imputation (thuml/Time-Series-Library)",
        "reference": ["--task_name", "imputation", "--seq_len", "96", "--label_len", "0",
                      "--pred_len", "0", "--mask_rate", "0.125", "--model", "Transformer",
                      "--e_layers", "2", "--d_layers", "1", "--factor", "3", "--batch_size", "16",
                      "--d_model", "128", "--d_ff", "128", "--top_k", "5", "--learning_rate", "0.001"],
        "ours": ["model=transformer_imputer", "task.mask=random", "task.mask_rate=0.125",
                 "data.seq_len=96", "data.label_len=0", "data.pred_len=0"],
    },
}
COMMON_REFERENCE = ["--is_training", "1", "--features", "M", "--enc_in", "7", "--dec_in", "7",
                    "--c_out", "7", "--des", "bench", "--itr", "1", "--num_workers", "0",
                    "--no_use_gpu"]
COMMON_OURS = ["data=ett", "data.features=M"]


def reference_run(model: str, checkout: Path, data_dir: Path, name: str, seed: int,
                  threads: int, budget: dict) -> dict:
    cmd = [sys.executable, "-c", RUNNER, str(checkout.resolve()), str(threads), str(seed),
           *COMMON_REFERENCE, *SETTINGS[model]["reference"],
           "--root_path", str((data_dir / DATA).resolve()) + "/", "--data_path", f"{name}.csv",
           "--data", name, "--model_id", f"{name}_{model}", "--train_epochs", str(budget["epochs"])]
    with tempfile.TemporaryDirectory(prefix="tslib_reference_") as tmp:
        # the library finds its models by listing ./models
        (Path(tmp) / "models").symlink_to(checkout.resolve() / "models")
        r = run_child(cmd, cwd=tmp)
    r.update(parse_reference_log(r["log"]))
    return r


def parse_reference_log(log: str) -> dict:
    """The summed epoch training seconds and the test MSE/MAE the library prints; None for
    what the log lacks."""
    epochs = [float(t) for t in EPOCH_TIME.findall(log)]
    scores = TEST_SCORES.search(log)
    return {"train_seconds": sum(epochs) if epochs else None,
            "mse": float(scores[1]) if scores else None, "mae": float(scores[2]) if scores else None}


def our_overrides(model: str, name: str, budget: dict) -> list[str]:
    return [*SETTINGS[model]["ours"], *COMMON_OURS, f"data.name={name}",
            f"trainer.max_epochs={budget['epochs']}"]


def our_scores(metrics: dict) -> dict:
    test = metrics.get("test", {})
    return {"mse": test.get("mse"), "mae": test.get("mae")}
