"""Hostile or careless input is refused early, in one short paragraph, with nothing already
written lost and nothing read from a file executed: configs from checkpoints build only the
project's own classes, one run directory holds one run, a resume keeps its overrides, bad
values stop the run before any work."""
import fcntl
import os
import subprocess
import sys

import pytest
import torch
import yaml

from tests.helpers import REPO, require_ucr, run_experiment

TINY = ["task=classification", "model=resnet1d", "data=ucr", "data.name=ECG200",
        "model.widths=[8,8]", "trainer.progress=false", "trainer.device=cpu"]


def main_py(args, data_dir, **env):
    return subprocess.run([sys.executable, "main.py", *args, f"paths.data_dir={data_dir}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture
def trained(data_dir, tmp_path):
    """A finished one-epoch classifier run (in-process, as main.run does)."""
    require_ucr(data_dir, "ECG200")
    run_dir = tmp_path / "trained"
    run_experiment([*TINY, "trainer.max_epochs=1", f"paths.data_dir={data_dir}"], run_dir)
    return run_dir


@pytest.mark.parametrize("where", ["run_dir", "checkpoint"])
def test_a_checkpoints_config_builds_only_the_projects_classes(trained, tmp_path, data_dir, where):
    """task=explain rebuilds the model from the trained run's config: a config naming another
    callable (os.system) is refused, and the command it carries never runs."""
    from tests.helpers import compose_cfg
    witness = tmp_path / "executed"
    ckpt = torch.load(trained / "checkpoints" / "best.pt", weights_only=True)
    cfg = yaml.safe_load(ckpt["config"])
    cfg["loss"] = {"_target_": "os.system", "command": f"touch {witness}"}
    if where == "checkpoint":                           # no .hydra/ beside it: the stored copy
        ckpt["config"] = yaml.safe_dump(cfg)
        (trained / ".hydra" / "config.yaml").unlink()
        torch.save(ckpt, trained / "checkpoints" / "best.pt")
    else:
        (trained / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    from main import run
    explain = compose_cfg(["task=explain", f"task.checkpoint={trained / 'checkpoints' / 'best.pt'}",
                           f"paths.data_dir={data_dir}", "trainer.progress=false"])
    with pytest.raises(ValueError, match="outside this project and torch.*loss._target_=os.system"):
        run(explain, tmp_path / "explain")
    assert not witness.exists()


def test_a_directory_holding_a_run_is_refused_before_anything_is_written(trained, data_dir):
    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    r = main_py([*TINY, "trainer.max_epochs=1", f"hydra.run.dir={trained}"], data_dir)
    assert r.returncode == 2 and "already holds a run" in r.stderr and "Traceback" not in r.stderr
    after = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == {p: b for p, b in before.items() if p.name != ".lock"}


def test_a_directory_in_use_by_a_live_run_is_refused(tmp_path, data_dir):
    require_ucr(data_dir, "ECG200")
    run_dir = tmp_path / "busy"
    run_dir.mkdir()
    with open(run_dir / ".lock", "a+") as held:           # another live run holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        r = main_py([*TINY, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"], data_dir)
    assert r.returncode == 2 and "in use by another run" in r.stderr
    assert not (run_dir / ".hydra").exists() and not (run_dir / "metrics.json").exists()


def test_resume_with_other_overrides_is_refused_or_recorded(tmp_path, data_dir):
    require_ucr(data_dir, "ECG200")
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    assert main_py(args, data_dir).returncode == 0
    r = main_py([*args, "trainer.resume=true", "optimizer.lr=0.5"], data_dir)
    assert r.returncode == 2 and "optimizer.lr=0.5" in r.stderr and "resume_allow_changes" in r.stderr
    # the same overrides resume (nothing left to train: 2 of 2 epochs done)
    same = main_py([*args, "trainer.resume=true"], data_dir)
    assert same.returncode == 0, same.stderr
    r = main_py([*args, "trainer.resume=true", "optimizer.lr=0.5", "trainer.resume_allow_changes=true"],
                data_dir)
    assert r.returncode == 0, r.stderr
    changes = yaml.safe_load((run_dir / ".hydra" / "resume_changes.yaml").read_text())
    assert changes[-1]["added"] == ["optimizer.lr=0.5"] and changes[-1]["removed"] == []


@pytest.mark.parametrize("override,message", [
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is not valid"),
    ("trainer.batch_size=1.5", "trainer.batch_size=1.5 is not valid"),
    ("optimizer.lr=0", "optimizer.lr=0 is not valid"),
    ("trainer.max_epochs=[1,", "cannot parse the override"),
])
def test_bad_values_stop_the_run_before_any_work(tmp_path, data_dir, override, message):
    run_dir = tmp_path / "never"
    r = main_py([*TINY, override, f"hydra.run.dir={run_dir}"], data_dir)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (run_dir / ".hydra").exists()


def test_forecast_horizon_zero_is_refused(tmp_path):
    from main import run
    from tests.helpers import compose_cfg
    with pytest.raises(ValueError, match="data.pred_len=0 is not valid"):
        run(compose_cfg(["model=patchtst", "data.pred_len=0"]), tmp_path)


def test_a_refusal_is_short_and_the_traceback_on_request(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    args = [*TINY, "trainer.max_epochs=1", "data.download=false", f"hydra.run.dir={tmp_path / 'r'}"]
    r = main_py(args, empty)
    assert r.returncode == 2 and r.stderr.startswith("Error: UCR dataset 'ECG200' not found")
    assert "Traceback" not in r.stderr
    full = main_py([*args[:-1], f"hydra.run.dir={tmp_path / 'r2'}"], empty, HYDRA_FULL_ERROR="1")
    assert full.returncode != 0 and "Traceback" in full.stderr
