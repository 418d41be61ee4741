"""End to end: pretraining + downstream protocol through main.run, on UCR ECG200 and on a
few MIT-BIH records (the headline command `python main.py model=timesurl data=ecg`)."""

import numpy as np

from tests.helpers import compose_cfg, read_metrics, run_experiment

TINY = ["model.depth=3", "model.hidden_dims=16", "model.output_dims=32",
        "trainer.progress=false", "trainer.device=cpu"]


def paths(data_dir, cache_dir):
    return [f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}"]


def test_model_config_selects_its_task_loss_and_paper_defaults():
    cfg = compose_cfg(["model=timesurl", "data=ecg"])
    assert cfg.task.name == "pretrain" and cfg.loss._target_.endswith("TimesURLLoss")
    assert cfg.trainer.batch_size == 8 and cfg.trainer.max_steps == "auto"
    assert cfg.optimizer._target_ == "torch.optim.AdamW"
    cfg = compose_cfg(["model=ts2vec", "data=ucr"])
    assert cfg.loss._target_.endswith("HierarchicalContrastiveLoss") and cfg.optimizer.lr == 1e-3
    assert cfg.task.protocol == "svm"


def test_ts2vec_on_ecg200_svm_and_few_labels(data_dir, cache_dir, tmp_path):
    base = ["model=ts2vec", "data=ucr", "data.name=ECG200", *TINY, *paths(data_dir, cache_dir)]
    res = run_experiment([*base, "trainer.max_steps=40"], tmp_path / "svm")
    test = read_metrics(tmp_path / "svm")["test"]
    assert res["test"]["accuracy"] == test["accuracy"] >= 0.75
    assert test["protocol"] == "svm" and test["n_labelled"] == 100      # TRAIN = train + val
    assert {"accuracy", "macro_f1", "auroc", "per_class"} <= set(test)
    assert read_metrics(tmp_path / "svm")["steps"] == 40
    assert (tmp_path / "svm" / "checkpoints" / "last.pt").is_file()
    assert list((tmp_path / "svm").rglob("projector_config.pbtxt")), "no embedding projector data"
    # 10 % of the labels, linear probe with early stopping on the validation split
    few = run_experiment([*base, "trainer.max_steps=5", "task.protocol=linear",
                          "task.label_fraction=0.1"], tmp_path / "few")["test"]
    assert few["protocol"] == "linear" and few["n_labelled"] == 8      # 10 % of 80, per class
    assert 0 <= few["accuracy"] <= 1


def test_same_seed_same_metrics(data_dir, cache_dir, tmp_path):
    args = ["model=timesurl", "data=ucr", "data.name=ECG200", *TINY, *paths(data_dir, cache_dir),
            "trainer.max_steps=6", "task.protocol=knn", "task.embedding_limit=0"]
    a = run_experiment(args, tmp_path / "a")["test"]
    b = run_experiment(args, tmp_path / "b")["test"]
    assert a["accuracy"] == b["accuracy"] and a["auroc"] == b["auroc"]


def test_timesurl_on_mitdb_records(data_dir, cache_dir, tmp_path):
    """The default command on a few records: DS1 part -> DS2 part, AAMI classes."""
    args = ["model=timesurl", "data=ecg", *TINY, *paths(data_dir, cache_dir),
            "data.ds1_records=[101,114,118]", "data.val_records=[118]",
            "data.ds2_records=[100,103]", "trainer.max_steps=20",
            "task.protocol_args.svm.max_samples=1500"]
    res = run_experiment(args, tmp_path / "ecg")
    test = read_metrics(tmp_path / "ecg")["test"]
    assert test["per_class"].keys() == {"N", "S", "V", "F", "Q"}
    assert test["extra_features"] is True                     # RR intervals appended
    assert test["n_labelled"] == 1500
    # DS2 records 100 and 103 are almost all normal beats: N must be found
    assert test["per_class"]["N"]["sensitivity"] > 0.9
    assert res["test"]["accuracy"] > 0.85
    assert sum(c["support"] for c in test["per_class"].values()) == np.sum(test["confusion_matrix"])


def test_ts2vec_forecasting_protocol_on_etth1(data_dir, cache_dir, tmp_path):
    """data=ett: pretraining on the training rows, ridge on causal sliding representations."""
    args = ["model=ts2vec", "data=ett", *TINY, *paths(data_dir, cache_dir), "model.depth=2",
            "model.hidden_dims=8", "model.output_dims=16", "trainer.max_steps=3",
            "task.forecast_padding=8", "task.pred_lens=[24,48]"]
    run_experiment(args, tmp_path / "ett")
    test = read_metrics(tmp_path / "ett")["test"]
    assert test["protocol"] == "ridge" and {"24", "48"} <= set(test)
    # scaled data: predicting the training mean scores about 1; the ridge forecast beats it
    assert 0 < test["24"]["mse"] < 0.95 and test["24"]["mae"] < test["48"]["mae"] + 0.05


def test_wrong_task_values_fail_before_any_work(tmp_path):
    import pytest
    from exp.exp_pretrain import Exp_Pretrain
    for bad, msg in [("task.protocol=svn", "unknown protocol 'svn'.*svm, logistic, knn, linear, finetune"),
                     ("task.encoder=first", "task.encoder=first is not valid; choose one of: last, best"),
                     ("task.label_fraction=0", "label_fraction")]:
        cfg = compose_cfg(["model=ts2vec", "data=ucr", bad, "paths.data_dir=/nonexistent"])
        with pytest.raises(ValueError, match=msg):   # raised before the (missing) data is read
            Exp_Pretrain(cfg, tmp_path)


def test_killed_pretraining_resumes_exactly(data_dir, cache_dir, tmp_path, monkeypatch):
    """Crops, timestamp masks and the weight average continue as if never interrupted."""
    import pytest
    import torch
    from exp.exp_basic import Exp_Basic
    args = ["model=ts2vec", "data=ucr", "data.name=ECG200", *TINY, *paths(data_dir, cache_dir),
            "trainer.max_steps=30", "task.protocol=knn", "task.embedding_limit=0", "seed=5"]
    full = run_experiment(args, tmp_path / "full")["test"]
    original = Exp_Basic._after_optimizer_step

    def crash(self):                      # 12 steps per epoch: die inside epoch 3
        original(self)
        if self.state["step"] == 26:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Exp_Basic, "_after_optimizer_step", crash)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(args, tmp_path / "resumed")
    monkeypatch.setattr(Exp_Basic, "_after_optimizer_step", original)
    resumed = run_experiment([*args, "trainer.resume=true"], tmp_path / "resumed")["test"]
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert any(k.startswith("averaged.") for k in a)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert resumed["accuracy"] == full["accuracy"]
