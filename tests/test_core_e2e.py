"""End-to-end behaviour of the framework on real data: main.py runs, outputs, resume,
determinism, TensorBoard contents, multirun + summariser, error messages."""
import os
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from exp.exp_basic import Exp_Basic
from tests.helpers import REPO, compose_cfg, read_metrics, require_ucr, run_experiment

# Small, quick settings on UCR ECG200 (100/100 real heartbeats).
ECG200 = ["task=classification", "model=resnet1d", "data=ucr", "data.name=ECG200",
          "model.widths=[16,16,16]", "trainer.progress=false", "trainer.batch_size=16"]


def _main(args, env_extra=None, cwd=REPO):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "main.py", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_main_py_runs_and_writes_run_directory(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_dir = tmp_path / "run"
    r = _main([*ECG200, "trainer.max_epochs=3", f"hydra.run.dir={run_dir}"],
              {"DATA_DIR": str(data_dir), "CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run_dir)
    assert set(m) >= {"val", "test"}
    for key in ("accuracy", "macro_f1", "auroc", "per_class"):
        assert key in m["test"]
    assert sum(c["support"] for c in m["test"]["per_class"].values()) == 100  # every test sample
    # the training steps alone take part of the time of training with its validation passes
    assert 0 < m["train_loop_seconds"] < m["train_seconds"]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert "test" in r.stdout + r.stderr

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for t in ("train/loss", "train/lr", "val/macro_f1", "final/test/accuracy"):
        assert t in tags["scalars"], (t, tags["scalars"])
    assert any("confusion_matrix" in t for t in tags["images"])
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins
    # beside the best epoch's validation metrics, metrics.json keeps the last epoch's
    last_val = acc.Scalars("val/macro_f1")
    assert len(last_val) == 3
    assert m["val_last_epoch"]["macro_f1"] == pytest.approx(last_val[-1].value, rel=1e-6)
    assert sum(c["support"] for c in m["val_last_epoch"]["per_class"].values()) == 20  # all of val


def test_epoch_train_loss_is_the_mean_of_its_steps(data_dir, cache_dir, tmp_path):
    # 80 training series in 5 batches of 16: the epoch loss is the plain mean of the 5 step losses
    run_experiment([*ECG200, "trainer.max_epochs=1", "model.widths=[8,8,8]",
                    "trainer.log_every_n_steps=1"], tmp_path, _paths(data_dir, cache_dir))
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    steps = [e.value for e in acc.Scalars("train/loss")]
    assert len(steps) == 5
    assert acc.Scalars("train/epoch_loss")[0].value == pytest.approx(sum(steps) / 5, rel=1e-5)


def _run_killed_at(monkeypatch, epoch: int, step: int, run) -> None:
    """Run ``run()`` with a simulated kill right after optimizer step ``step`` of epoch index ``epoch``."""
    original = Exp_Basic._after_optimizer_step

    def crash(self):
        original(self)
        if self.state["epoch"] == epoch and self.state["step"] == step:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Exp_Basic, "_after_optimizer_step", crash)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(Exp_Basic, "_after_optimizer_step", original)


def test_resumed_run_equals_uninterrupted_run(data_dir, cache_dir, tmp_path, monkeypatch):
    edit = _paths(data_dir, cache_dir)
    args = [*ECG200, "trainer.max_epochs=4", "trainer.patience=null", "model.widths=[8,8,8]",
            "trainer.mixup_alpha=0.2", "scheduler=step", "scheduler.step_size=2", "seed=3"]
    full = run_experiment(args, tmp_path / "full", edit)

    # Kill the second run in the middle of epoch 3 (after 2 finished epochs and 2 more steps).
    _run_killed_at(monkeypatch, epoch=2, step=2 * 5 + 2, run=lambda: run_experiment(
        args, tmp_path / "resumed", edit))
    resumed = run_experiment([*args, "trainer.resume=true"], tmp_path / "resumed", edit)

    assert resumed["test"]["loss"] == pytest.approx(full["test"]["loss"], abs=1e-6)
    assert resumed["test"]["accuracy"] == full["test"]["accuracy"]
    assert resumed["val"]["loss"] == pytest.approx(full["val"]["loss"], abs=1e-6)
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_checkpoint_every_holds_the_best_epoch_until_the_next_write(data_dir, cache_dir, tmp_path):
    from exp.exp_classification import Exp_Classification
    cfg = compose_cfg([*ECG200, "trainer.checkpoint_every=2", "model.widths=[8,8,8]"])
    _paths(data_dir, cache_dir)(cfg)
    exp = Exp_Classification(cfg, tmp_path)
    last, best = exp.ckpt_dir / "last.pt", exp.ckpt_dir / "best.pt"
    exp.state["epoch"] = 1                       # epoch 1 is best but not a write epoch
    exp._write_checkpoints(improved=True, final=False)
    assert not last.exists() and not best.exists()
    at_best = {k: v.clone() for k, v in exp.model.state_dict().items()}
    with torch.no_grad():                        # epoch 2 trains on, worse
        for p in exp.model.parameters():
            p.add_(1.0)
    exp.state["epoch"] = 2
    exp._write_checkpoints(improved=False, final=False)
    b = torch.load(best, weights_only=True)
    assert b["state"]["epoch"] == 1 and all(torch.equal(b["model"][k], at_best[k]) for k in at_best)
    a = torch.load(last, weights_only=True)
    assert a["state"]["epoch"] == 2 and not torch.equal(a["model"]["fc.weight"], at_best["fc.weight"])


def test_resume_after_a_kill_between_checkpoint_writes(data_dir, cache_dir, tmp_path, monkeypatch):
    edit = _paths(data_dir, cache_dir)
    args = [*ECG200, "trainer.max_epochs=4", "trainer.patience=null", "model.widths=[8,8,8]",
            "trainer.checkpoint_every=2", "seed=5"]
    full = run_experiment(args, tmp_path / "full", edit)
    # kill in epoch 4: epochs 1-3 done, last.pt written after epoch 2 only
    _run_killed_at(monkeypatch, epoch=3, step=3 * 5 + 1, run=lambda: run_experiment(
        args, tmp_path / "resumed", edit))
    ckpt = tmp_path / "resumed" / "checkpoints" / "last.pt"
    assert torch.load(ckpt, weights_only=True)["state"]["epoch"] == 2
    resumed = run_experiment([*args, "trainer.resume=true"], tmp_path / "resumed", edit)
    assert resumed["test"]["loss"] == pytest.approx(full["test"]["loss"], abs=1e-6)
    assert resumed["val"]["loss"] == pytest.approx(full["val"]["loss"], abs=1e-6)


def test_same_seed_same_metrics_other_seed_differs(data_dir, cache_dir, tmp_path):
    edit = _paths(data_dir, cache_dir)
    args = [*ECG200, "trainer.max_epochs=2", "model.widths=[8,8,8]"]
    a = run_experiment([*args, "seed=1"], tmp_path / "a", edit)
    b = run_experiment([*args, "seed=1"], tmp_path / "b", edit)
    c = run_experiment([*args, "seed=2"], tmp_path / "c", edit)
    assert a["test"]["loss"] == b["test"]["loss"]
    assert a["test"]["loss"] != c["test"]["loss"]


def test_transformer_classifier_runs_on_real_data(data_dir, cache_dir, tmp_path):
    m = run_experiment(["task=classification", "model=transformer", "data=ucr", "data.name=ECG200",
                        "trainer.progress=false", "trainer.max_epochs=2", "model.d_model=16",
                        "model.n_layers=1"], tmp_path / "t", _paths(data_dir, cache_dir))
    assert 0.0 <= m["test"]["accuracy"] <= 1.0
    assert sum(c["support"] for c in m["test"]["per_class"].values()) == 100


def test_multirun_and_summariser(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    sweep = tmp_path / "sweep"
    r = _main(["-m", *ECG200, "trainer.max_epochs=1", "model.widths=[8,8,8]", "seed=0,1",
               "optimizer.lr=0.001,0.002", f"hydra.sweep.dir={sweep}"],
              {"DATA_DIR": str(data_dir), "CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list(sweep.rglob("metrics.json"))) == 4
    s = subprocess.run([sys.executable, "scripts/summarise.py", str(sweep)], cwd=REPO,
                       capture_output=True, text=True)
    assert s.returncode == 0, s.stderr
    assert "± " in s.stdout and s.stdout.count("| 2 |") == 2  # per lr, both seeds in one row
    assert (sweep / "summary.csv").read_text().count("\n") == 3
    # --pool folds a swept key (e.g. cross-validation folds) into the rows
    s = subprocess.run([sys.executable, "scripts/summarise.py", str(sweep), "--pool", "optimizer.lr"],
                       cwd=REPO, capture_output=True, text=True)
    assert s.returncode == 0, s.stderr
    assert "| 4 |" in s.stdout and "optimizer.lr" not in s.stdout
    assert (sweep / "summary.csv").read_text().count("\n") == 2


@pytest.mark.parametrize("args, expected", [
    (["model=no_such_model"], ["model", "resnet1d", "transformer"]),
    (["data=nope"], ["data", "ecg", "ucr"]),
    (["task=nope"], ["task", "classification"]),
    (["trainer.no_such_key=1"], ["no_such_key"]),
])
def test_wrong_choice_or_key_fails_before_work_and_names_it(args, expected, tmp_path):
    r = _main([*args, f"hydra.run.dir={tmp_path / 'never'}"])
    assert r.returncode != 0
    for word in expected:
        assert word in r.stderr + r.stdout
    assert not (tmp_path / "never" / "metrics.json").exists()


def test_bad_values_fail_with_the_fix(data_dir, tmp_path):
    from main import run
    require_ucr(data_dir, "ECG200")
    cfg = compose_cfg([*ECG200, "trainer.device=gpu"])
    with pytest.raises(ValueError, match="trainer.device=gpu.*auto, cpu, cuda"):
        run(cfg, tmp_path)
    cfg = compose_cfg([*ECG200, "trainer.precision=fp8"])
    with pytest.raises(ValueError, match="fp32, bf16"):
        run(cfg, tmp_path)
    cfg = compose_cfg([*ECG200, "trainer.resume=true", f"paths.data_dir={data_dir}"])
    with pytest.raises(FileNotFoundError, match="hydra.run.dir"):
        run(cfg, tmp_path / "fresh")


def test_every_model_composes_with_every_data_family():
    models = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
    datas = sorted(p.stem for p in (REPO / "conf" / "data").glob("*.yaml"))
    assert {"resnet1d", "transformer"} <= set(models) and {"ecg", "ucr", "uea"} <= set(datas)
    for model in models:
        for data in datas:
            cfg = compose_cfg([f"model={model}", f"data={data}"])
            assert cfg.model.name and cfg.data.family and cfg.task.name
            assert "_target_" in cfg.model and "_target_" in cfg.loss


def test_model_config_picks_its_task_and_command_line_wins():
    assert compose_cfg(["model=resnet1d"]).task.name == "classification"
    models = {p.stem for p in (REPO / "conf" / "model").glob("*.yaml")}
    if "ts2vec" in models:
        assert compose_cfg(["model=ts2vec"]).task.name == "pretrain"
        assert compose_cfg(["model=ts2vec", "task=classification"]).task.name == "classification"
    # data=ecg brings its training recipe (mixup, chosen by cross-validation inside DS1); other
    # data keep the plain default, and the command line wins
    assert compose_cfg(["model=resnet1d", "data=ecg"]).trainer.mixup_alpha == 0.2
    assert compose_cfg(["model=resnet1d", "data=ecg", "trainer.mixup_alpha=0"]).trainer.mixup_alpha == 0
    assert compose_cfg(["model=resnet1d", "data=ucr"]).trainer.mixup_alpha == 0


def _paths(data_dir, cache_dir):
    def edit(cfg):
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.cache_dir = str(cache_dir)
    return edit


def test_mitdb_end_to_end_on_a_few_records(data_dir, cache_dir, tmp_path):
    m = run_experiment(["task=classification", "model=resnet1d", "data=ecg", "trainer.progress=false",
                        "data.ds1_records=[101,106,118,119]", "data.val_records=[119]",
                        "data.ds2_records=[100,105]", "model.widths=[16,16,16]",
                        "trainer.max_epochs=2", "trainer.max_per_class=null"],
                       tmp_path / "mitdb", _paths(data_dir, cache_dir))
    test = m["test"]
    assert set(test["per_class"]) == {"N", "S", "V", "F", "Q"}
    # records 100 and 105 hold 2273 + 2572 beats; every one is classified
    assert sum(c["support"] for c in test["per_class"].values()) == 2273 + 2572
    assert test["accuracy"] > 0.7  # records 100 and 105 are ~98 % N beats


def test_a_new_run_never_overwrites_checkpoints_in_its_directory(data_dir, cache_dir, tmp_path):
    edit = _paths(data_dir, cache_dir)
    args = [*ECG200, "trainer.max_epochs=1", "model.widths=[8,8,8]"]
    run_experiment(args, tmp_path / "r", edit)
    before = (tmp_path / "r" / "checkpoints" / "best.pt").read_bytes()
    with pytest.raises(FileExistsError, match="trainer.resume=true"):
        run_experiment(args, tmp_path / "r", edit)
    assert (tmp_path / "r" / "checkpoints" / "best.pt").read_bytes() == before
