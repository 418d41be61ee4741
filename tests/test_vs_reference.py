"""scripts/bench/vs_reference.py: the official TS2Vec loader's view of a UCR set (its .tsv files,
or a .ts set written as .tsv with the same labels and values), the parsing of each reference's
printed times and scores, and our side composing the network and recipe Time-Series-Library
runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from data_provider.ucr_uea import locate, parse_files
from scripts.bench.references.ts2vec import parse_reference_log, reference_dataset
from scripts.bench.references import REFERENCES, tslib
from tests.helpers import require_ucr
from utils.compose import compose_cfg


def test_a_ts_set_is_written_as_the_tsv_the_official_loader_reads(data_dir, tmp_path):
    require_ucr(data_dir, "GunPoint")
    reference_dataset(data_dir, "GunPoint", tmp_path)
    arrays = parse_files(locate(data_dir / "UCR" / "GunPoint", "GunPoint"))
    for split in ("train", "test"):
        table = pd.read_csv(tmp_path / "GunPoint" / f"GunPoint_{split.upper()}.tsv", sep="\t", header=None)
        values = table.iloc[:, 1:].to_numpy(np.float32)
        assert values.shape == arrays[f"x_{split}"][..., 0].shape == (len(table), 150)
        np.testing.assert_array_equal(values, arrays[f"x_{split}"][..., 0])   # exact round trip
        assert [str(v) for v in table[0]] == [str(int(float(v))) for v in arrays[f"labels_{split}"]]


def test_a_tsv_set_is_used_as_it_is(data_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    reference_dataset(data_dir, "ECG200", tmp_path)
    assert (tmp_path / "ECG200").is_symlink()
    assert (tmp_path / "ECG200" / "ECG200_TRAIN.tsv").read_bytes() == \
        (data_dir / "UCR" / "ECG200" / "ECG200_TRAIN.tsv").read_bytes()


def test_official_time_and_accuracy_are_read_from_its_output():
    log = ("Training time: 1:02:03.500000\n\n"
           "Evaluation result: {'acc': 0.88, 'auprc': 0.9769241156457482}\n")
    assert parse_reference_log(log) == (3723.5, 0.88)
    assert parse_reference_log("Traceback ...") == (None, None)


def test_time_series_library_epoch_times_and_test_scores_are_read_from_its_output():
    log = ("\titers: 100, epoch: 1 | loss: 0.4\nEpoch: 1 cost time: 179.5\n"
           "Epoch: 1, Steps: 267 | Train Loss: 0.45 Vali Loss: 0.7 Test Loss: 0.41\n"
           "Epoch: 2 cost time: 170.25\nmse:0.40669476985931396, mae:0.41327476501464844, dtw:Not calculated\n")
    assert tslib.parse_reference_log(log) == {"train_seconds": 349.75, "mse": 0.40669476985931396,
                                              "mae": 0.41327476501464844}
    assert tslib.parse_reference_log("Traceback ...") == {"train_seconds": None, "mse": None, "mae": None}


def _reference_args(model: str) -> dict:
    args = [*tslib.COMMON_REFERENCE, *tslib.SETTINGS[model]["reference"]]
    return {a[2:]: v for a, v in zip(args, args[1:]) if a.startswith("--") and not v.startswith("--")}


@pytest.mark.parametrize("model", sorted(tslib.SETTINGS))
def test_our_side_composes_the_network_and_recipe_the_library_runs(model):
    """Time-Series-Library's defaults (run.py) where its ETT script passes nothing."""
    ref = {"d_model": "512", "d_ff": "2048", "dropout": "0.1", "batch_size": "32",
           "learning_rate": "0.0001", "patience": "3", "n_heads": "8", **_reference_args(model)}
    cfg = compose_cfg(tslib.our_overrides(model, "ETTh1", {"epochs": 2}))
    assert cfg.data.name == "ETTh1" and cfg.data.features == ref["features"] == "M"
    for ours, theirs in (("data.seq_len", "seq_len"), ("data.label_len", "label_len"),
                         ("data.pred_len", "pred_len"), ("model.d_model", "d_model"),
                         ("model.d_ff", "d_ff"), ("model.n_heads", "n_heads"),
                         ("model.e_layers", "e_layers"), ("model.dropout", "dropout"),
                         ("trainer.batch_size", "batch_size"), ("optimizer.lr", "learning_rate"),
                         ("trainer.patience", "patience")):
        assert float(OmegaConf.select(cfg, ours)) == float(ref[theirs]), ours
    if model == "informer":
        assert (cfg.model.d_layers, cfg.model.factor) == (int(ref["d_layers"]), int(ref["factor"]))
    if ref.get("task_name") == "imputation":      # the same share of values hidden at random
        assert cfg.task.name == "impute" and cfg.task.mask == "random"
        assert cfg.task.mask_rate == float(ref["mask_rate"])
    # the library's Adam with lradj type1 (halved after every epoch) and its epoch budget
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.trainer.max_epochs == 2
    assert list(cfg.scheduler.milestones)[:3] == [2, 3, 4] and cfg.scheduler.gamma == 0.5


@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_every_method_composes_our_side_on_its_default_dataset(method):
    ref = REFERENCES[method]
    cfg = compose_cfg(ref.our_overrides(ref.datasets[0], {"iters": 7, "epochs": 2}))
    assert cfg.model.name == method and cfg.data.name == ref.datasets[0]
    budget = cfg.trainer.max_steps if ref.budget == "iters" else cfg.trainer.max_epochs
    assert budget == {"iters": 7, "epochs": 2}[ref.budget]
