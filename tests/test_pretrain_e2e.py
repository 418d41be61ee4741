"""End to end: pretraining + downstream protocol through main.run, on UCR ECG200 and on a
few MIT-BIH records (the headline command `python main.py model=timesurl data=ecg`)."""

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("name,warmup,decay,final_lr", [
    ("simclr", 0.1, "cosine", 0.0), ("moco", 0.0, "cosine", 0.0), ("byol", 0.01, "cosine", 0.0),
    ("simsiam", 0.0, "cosine", 0.0), ("dino", 0.1, "cosine", 1e-6), ("mae", 0.05, "cosine", 0.0),
    ("wav2vec2", 0.08, "linear", 0.0)])
def test_ssl_methods_schedule_their_learning_rate_as_their_papers(name, warmup, decay, final_lr):
    s = compose_cfg([f"model={name}"]).scheduler
    assert s._target_ == "utils.schedulers.WarmupDecayLR" and s.interval == "step"
    assert (s.warmup, s.decay, s.final_lr) == (warmup, decay, final_lr)


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


def test_several_evaluations_share_one_encoder(data_dir, cache_dir, tmp_path):
    """task.evaluations: more protocol:fraction pairs after the main one, same frozen encoder;
    the repeated main evaluation reproduces it exactly (features encoded once, whole splits)."""
    args = ["model=ts2vec", "data=ucr", "data.name=ECG200", *TINY, *paths(data_dir, cache_dir),
            "trainer.max_steps=5", "task.protocol=knn", "task.embedding_limit=0",
            "task.evaluations=[knn:1.0,knn:0.1,linear]"]
    run_experiment(args, tmp_path / "multi")
    metrics = read_metrics(tmp_path / "multi")
    evals = metrics["evaluations"]
    assert set(evals) == {"knn@1", "knn@0.1", "linear@1"}
    assert evals["knn@1"]["accuracy"] == metrics["test"]["accuracy"]
    assert evals["knn@1"]["n_labelled"] == 100 and evals["knn@0.1"]["n_labelled"] == 10
    assert evals["linear@1"]["protocol"] == "linear" and evals["linear@1"]["n_labelled"] == 80
    assert all(0 <= e["accuracy"] <= 1 for e in evals.values())
    assert metrics["train_seconds"] > 0                         # pretraining wall time
    assert 0 < metrics["train_loop_seconds"] <= metrics["train_seconds"]
    with pytest.raises(ValueError, match="unknown protocol 'lnear'"):
        run_experiment([*args, "task.evaluations=[lnear:1.0]"], tmp_path / "bad")
    with pytest.raises(ValueError, match="label fraction must lie in"):
        run_experiment([*args, "task.evaluations=[knn:2]"], tmp_path / "bad2")


def test_pretrained_checkpoint_is_evaluated_without_pretraining(data_dir, cache_dir, tmp_path):
    """task.pretrained: the saved encoder of a finished run gives that run's metrics again,
    with no training step; a checkpoint of another model or shape is refused by name."""
    args = ["model=ts2vec", "data=ucr", "data.name=ECG200", *TINY, *paths(data_dir, cache_dir),
            "task.protocol=knn", "task.embedding_limit=0"]
    run_experiment([*args, "trainer.max_steps=8"], tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    # a different seed would pretrain differently: equal metrics mean the weights were loaded
    again = run_experiment([*args, "trainer.max_steps=8", "seed=5", f"task.pretrained={ckpt}"],
                           tmp_path / "again")
    first = read_metrics(tmp_path / "run")["test"]
    assert again["test"]["accuracy"] == first["accuracy"] and again["test"]["auroc"] == first["auroc"]
    assert again["test"]["encoder"] == f"pretrained:{ckpt}"
    saved = read_metrics(tmp_path / "again")
    assert saved["steps"] == 8 and saved["train_seconds"] == read_metrics(tmp_path / "run")["train_seconds"]
    assert saved["train_loop_seconds"] == read_metrics(tmp_path / "run")["train_loop_seconds"]
    assert not (tmp_path / "again" / "checkpoints" / "last.pt").exists()   # nothing trained
    with pytest.raises(ValueError, match="does not fit model=ts2vec"):
        run_experiment([*args, "model.output_dims=16", f"task.pretrained={ckpt}"], tmp_path / "shape")
    with pytest.raises(ValueError, match="holds a model=ts2vec encoder, not model=timesurl"):
        run_experiment(["model=timesurl", *args[1:], f"task.pretrained={ckpt}"], tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="task.pretrained=.*does not exist"):
        run_experiment([*args, f"task.pretrained={tmp_path}/none.pt"], tmp_path / "missing")


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


# ---------------------------------------------------------------------------- every SSL method
SMALL_ECG = ["data=ecg", "data.ds1_records=[101,118]", "data.val_records=[118]",
             "data.ds2_records=[100]"]
RESNET = ["model.repr_dim=16", "model.encoder_kwargs.widths=[16,16]",
          "model.encoder_kwargs.kernel_sizes=[8,5]"]
TS2VEC = ["model.depth=2", "model.hidden_dims=8", "model.output_dims=16"]
# the narrowest settings of each method (conf/model/<name>.yaml holds the paper's)
SSL_TINY = {
    "simclr": RESNET + ["model.proj_dim=8"],
    "moco": RESNET + ["model.proj_dim=8", "model.queue_size=64"],
    "byol": RESNET + ["model.proj_hidden_dim=16", "model.proj_dim=8", "model.pred_hidden_dim=16"],
    "simsiam": RESNET + ["model.proj_dim=16", "model.pred_dim=8"],
    "dino": RESNET + ["model.out_dim=32", "model.hidden_dim=16", "model.bottleneck_dim=8",
                      "model.n_local_crops=1"],
    "instdisc": RESNET + ["model.feature_dim=8", "model.nce_k=64"],
    "hybrid": RESNET + ["model.proj_dim=8", "task.label_fraction=0.1"],
    "cpc": ["model.enc_dim=16", "model.context_dim=16", "model.pred_steps=2"],
    "tfc": ["model.num_layers=1", "model.proj_hidden=16", "model.proj_dim=8"],
    "comet": TS2VEC,
    "bert": ["model.d_model=16", "model.depth=1", "model.num_heads=2", "model.d_ff=32"],
    "gpt": ["model.d_model=16", "model.depth=1", "model.num_heads=2", "model.d_ff=32"],
    "mae": ["model.embed_dim=16", "model.depth=1", "model.num_heads=2", "model.decoder_dim=8",
            "model.decoder_depth=1", "model.decoder_heads=2"],
    "wav2vec2": ["model.conv_layers=[[16,10,2],[16,3,2]]", "model.d_model=16", "model.depth=1",
                 "model.num_heads=2", "model.ffn_dim=16", "model.final_dim=8", "model.num_vars=8",
                 "model.conv_pos=8", "model.conv_pos_groups=4", "loss.num_negatives=5"],
    "ts2vec": TS2VEC,
    "timesurl": TS2VEC,
}


def test_every_ssl_model_config_is_covered():
    from tests.helpers import REPO
    pretrain_models = {p.stem for p in (REPO / "conf" / "model").glob("*.yaml")
                       if compose_cfg([f"model={p.stem}"]).task.name == "pretrain"}
    assert pretrain_models == set(SSL_TINY)


@pytest.mark.parametrize("name", sorted(SSL_TINY))
def test_ssl_model_pretrains_and_is_evaluated_on_mitdb(name, data_dir, cache_dir, tmp_path):
    """python main.py model=<name> data=ecg on three records, narrow, 2 steps + knn."""
    args = [f"model={name}", *SMALL_ECG, *SSL_TINY[name], *paths(data_dir, cache_dir),
            "trainer.max_steps=2", "trainer.batch_size=32", "task.protocol=knn",
            "task.embedding_limit=0", "trainer.progress=false", "trainer.device=cpu"]
    res = run_experiment(args, tmp_path)
    metrics = read_metrics(tmp_path)
    assert metrics["steps"] == 2 and metrics["test_split"] == "test"
    test = res["test"]
    assert test["protocol"] == "knn" and test["per_class"].keys() == {"N", "S", "V", "F", "Q"}
    # record 100 is 99 % normal beats; record 101 (in the knn's training set) too
    assert test["per_class"]["N"]["sensitivity"] > 0.8
    # knn fits on downstream train + val: records 101 (1865 beats) + 118 (2278); the hybrid
    # runs with label_fraction 0.1: 10 % of each, per class (188 + 229)
    labelled = 188 + 229 if name == "hybrid" else 1865 + 2278
    assert test["n_labelled"] == labelled


# ---------------------------------------------------------------------------- pretraining set
def test_pretraining_set_keeps_ids_through_sections_and_adds_index():
    from data_provider.pretraining import pretraining_set
    x = np.arange(2 * 10, dtype=np.float32).reshape(2, 10, 1)
    x[1, 5:] = np.nan                              # series 1: its second section is empty
    ds = pretraining_set(x, {"patient_id": np.array([7, 9])}, max_len=4)
    a = {k: v.numpy() for k, v in ds.arrays.items()}
    # TS2Vec's sections (10 // 4 = 2 of 5 steps), section-major; the empty one dropped
    assert np.array_equal(a["x"][:, :, 0], [x[0, :5, 0], x[1, :5, 0], x[0, 5:, 0]])
    assert a["patient_id"].tolist() == [7, 9, 7] and a["index"].tolist() == [0, 1, 2]
    whole = pretraining_set(x, {"trial_id": np.array([3, 4])}, max_len=None)
    assert whole.arrays["trial_id"].tolist() == [3, 4] and len(whole) == 2


def _exp(overrides, data_dir, cache_dir, tmp_path):
    from exp.exp_pretrain import Exp_Pretrain
    from utils.seed import seed_everything
    seed_everything(0)
    return Exp_Pretrain(compose_cfg([*overrides, *paths(data_dir, cache_dir),
                                     "trainer.device=cpu", "trainer.progress=false"]), tmp_path)


def test_auto_iterations_follow_each_official_count(data_dir, cache_dir, tmp_path):
    # UCR ECG5000: 500 x 140 = 70,000 training values -> TS2Vec's 200 iterations; TimesURL's
    # official loader counts its appended time-stamp channel too (140,000) -> 600
    data = ["data=ucr", "data.name=ECG5000"]
    ts2vec = _exp(["model=ts2vec", *data], data_dir, cache_dir, tmp_path / "a")
    assert ts2vec.meta["pretrain_values"] == 70_000 and ts2vec.budget.max_steps == 200
    timesurl = _exp(["model=timesurl", *data], data_dir, cache_dir, tmp_path / "b")
    assert timesurl.budget.max_steps == 600


def test_run_long_schedules_get_the_resolved_budget_and_decay_groups(data_dir, cache_dir, tmp_path):
    # DINO on ECG200: max_steps=auto resolves to 200 before its warm-up/cosine is built;
    # biases and norm gains go in a group without weight decay (official param groups)
    dino = _exp(["model=dino", "data=ucr", "data.name=ECG200", *SSL_TINY["dino"]],
                data_dir, cache_dir, tmp_path / "a")
    assert dino.scheduler.total == 200 and dino.scheduler.warmup_steps == 20
    decayed, free = dino.optimizer.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in free["params"])
    assert (decayed["weight_decay"], free["weight_decay"], decayed["lr"]) == pytest.approx((0.04, 0.0, 0.0))
    # MAE is epoch-bounded: 3 epochs of ceil(100 / 32) = 4 batches
    mae = _exp(["model=mae", "data=ucr", "data.name=ECG200", *SSL_TINY["mae"],
                "trainer.max_epochs=3", "trainer.batch_size=32"], data_dir, cache_dir, tmp_path / "b")
    assert mae.scheduler.total == 12
    # the benchmark's random rows: 0 steps (a frozen random encoder) must still build
    frozen = _exp(["model=simclr", "data=ucr", "data.name=ECG200", *SSL_TINY["simclr"],
                   "trainer.max_steps=0"], data_dir, cache_dir, tmp_path / "c")
    assert frozen.scheduler.total == 1 and frozen.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_instdisc_steps_its_lr_down_at_the_papers_epochs():
    # Wu et al. 2018: x0.1 at epochs 120 and 160 of 200 -> 60 % and 80 % of the run
    s = compose_cfg(["model=instdisc"]).scheduler
    assert s._target_ == "utils.schedulers.WarmupDecayLR" and s.interval == "step"
    assert (s.warmup, s.decay, list(s.milestones), s.gamma) == (0.0, "step", [0.6, 0.8], 0.1)


def test_simsiam_predictor_keeps_its_lr_while_the_rest_decays(data_dir, cache_dir, tmp_path):
    # the official --fix-pred-lr: after a whole run of cosine decay, the predictor's group is
    # still at the initial lr and the encoder + projector's is at the cosine's end (0)
    exp = _exp(["model=simsiam", "data=ucr", "data.name=ECG200", *SSL_TINY["simsiam"],
                "trainer.max_steps=4"], data_dir, cache_dir, tmp_path / "a")
    scheduled, fixed = exp.optimizer.param_groups
    assert {id(p) for p in fixed["params"]} == {id(p) for p in exp.model.predictor.parameters()}
    assert fixed["fix_lr"] and not scheduled.get("fix_lr")
    assert (scheduled["lr"], fixed["lr"]) == pytest.approx((1e-3, 1e-3))
    exp.train()
    assert exp.state["step"] == 4
    assert (scheduled["lr"], fixed["lr"]) == pytest.approx((0.0, 1e-3))
    # the paper's baseline: one group, decayed
    base = _exp(["model=simsiam", "data=ucr", "data.name=ECG200", *SSL_TINY["simsiam"],
                 "trainer.max_steps=4", "model.fix_pred_lr=false"], data_dir, cache_dir, tmp_path / "b")
    assert len(base.optimizer.param_groups) == 1


def test_instdisc_and_comet_batches_carry_patient_and_index(data_dir, cache_dir, tmp_path):
    exp = _exp(["model=comet", *SMALL_ECG, *TS2VEC, "trainer.batch_size=40"], data_dir, cache_dir, tmp_path)
    train = exp.data.splits["train"].arrays
    assert {"x", "patient_id", "index"} <= set(train)
    assert train["index"].tolist() == list(range(len(train["x"])))
    assert set(train["patient_id"].tolist()) == {101, 118}          # train + val records
    # COMET: batches are whole trials (10 consecutive beats of one patient), trials shuffled
    batch = next(iter(exp._loader("train", train=True)))
    trials = exp.model._ids(batch)["trial_id"]
    runs = torch.unique_consecutive(trials, return_counts=True)[1]
    assert len(batch["x"]) == 40 and (runs == 10).sum() >= 3 and len(torch.unique(trials)) <= 5
    assert not torch.equal(batch["index"], torch.arange(40))        # shuffled, not the data order


def test_hybrid_pretrains_on_the_same_labelled_fraction_the_protocol_gets(data_dir, cache_dir, tmp_path):
    from utils.protocols import stratified_subset
    exp = _exp(["model=hybrid", *SMALL_ECG, *SSL_TINY["hybrid"], "task.label_fraction=0.05"],
               data_dir, cache_dir, tmp_path)
    y_true = exp.data.splits["downstream_train"].arrays["y"].numpy()
    y = exp.data.splits["train"].arrays["y"].numpy()
    keep = stratified_subset(y_true, 0.05, 0)
    assert len(y) == len(y_true) and np.array_equal(np.flatnonzero(y >= 0), keep)
    assert np.array_equal(y[keep], y_true[keep]) and (y == -1).sum() == len(y) - len(keep)
    assert "y" in exp.data.splits["val"].arrays                     # held-out loss, same hiding


def test_tfc_epilepsy_paper_finetune_reports_on_val(data_dir, cache_dir, tmp_path):
    """experiment=tfc_epilepsy (2 pretraining epochs, 2 fine-tuning epochs): no test.pt, so the
    20 validation series are the reported set and are not used for selection."""
    args = ["experiment=tfc_epilepsy", *paths(data_dir, cache_dir), "trainer.max_epochs=2",
            "task.protocol_args.tfc_finetune.epochs=2", "model.proj_hidden=32",
            "trainer.progress=false", "trainer.device=cpu", "task.embedding_limit=0"]
    res = run_experiment(args, tmp_path)
    metrics = read_metrics(tmp_path)
    assert res["test_split"] == metrics["test_split"] == "val" and "test" not in metrics
    val = metrics["val"]
    assert val["protocol"] == "tfc_finetune" and val["n_labelled"] == 60
    assert sum(c["support"] for c in val["per_class"].values()) == 20
    assert metrics["steps"] == 2                                    # 60 series = one batch of 60


def test_protocol_and_forecast_mode_mismatches_fail_before_pretraining(data_dir, cache_dir, tmp_path):
    with pytest.raises(TypeError, match="tfc_finetune .*needs model.finetune_loss"):
        _exp(["model=simclr", "data=ucr", "data.name=ECG200", "task.protocol=tfc_finetune",
              *RESNET], data_dir, cache_dir, tmp_path)
    with pytest.raises(TypeError, match="causal=True.*model=patchtst_pretrain has no such mode"):
        _exp(["model=patchtst_pretrain", "task=pretrain", "model.d_model=16", "model.n_heads=2",
              "model.e_layers=1"], data_dir, cache_dir, tmp_path)


def test_max_steps_auto_only_for_pretraining():
    from utils.config_check import check_config
    check_config(compose_cfg(["model=ts2vec"]))
    # the epoch cosine's T_max follows max_epochs: a step-bounded run must say so before training
    with pytest.raises(ValueError, match="scheduler.T_max is null"):
        check_config(compose_cfg(["model=ts2vec", "scheduler=cosine", "trainer.max_steps=100"]))
    check_config(compose_cfg(["model=mae", "trainer.max_epochs=null", "trainer.max_steps=100"]))
    # model=mae sets scheduler.warmup for its own schedule: another scheduler must drop it
    with pytest.raises(ValueError, match=r"scheduler.warmup is not an argument of CosineAnnealingLR.*~scheduler.warmup"):
        check_config(compose_cfg(["model=mae", "scheduler=cosine"]))
    check_config(compose_cfg(["model=mae", "scheduler=cosine", "~scheduler.warmup"]))
    with pytest.raises(ValueError, match="max_steps=auto is only valid for task=pretrain"):
        check_config(compose_cfg(["model=ts2vec", "task=classification"]))
    with pytest.raises(ValueError, match="max_steps=ten is not valid"):
        check_config(compose_cfg(["model=resnet1d", "trainer.max_steps=ten"]))
