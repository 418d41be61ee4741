"""Sweeps through Hydra's plugins (docs/sweeps.md): parallel runs on one machine (joblib),
Optuna searches on a validation objective, the Slurm preset and a requeued job that resumes."""
import json
import os
import re
import signal
import subprocess
import sys

import yaml

from tests.helpers import REPO, read_metrics, require_ucr

TINY = ["data=ucr", "data.name=ECG200", "model.widths=[8,8]", "model.kernel_sizes=[8,5]",
        "trainer.progress=false", "trainer.device=cpu", "trainer.num_threads=1"]
TINY_SIMCLR = ["data.name=ECG200", "model.encoder_kwargs.widths=[8,8]",
               "model.encoder_kwargs.kernel_sizes=[8,5]", "model.repr_dim=16", "model.proj_dim=16",
               "trainer.max_steps=3", "trainer.progress=false", "trainer.device=cpu",
               "trainer.num_threads=1"]
# the override docs/sweeps.md gives Slurm sweeps: a requeued job resumes its run
RESUME_ON_REQUEUE = "trainer.resume=auto"
OBJECTIVE = re.compile(r"sweep objective: (\S+) = (\S+)")


def _main(args, data_dir, cache_dir, env_extra=None):
    env = {**os.environ, "DATA_DIR": str(data_dir), "CACHE_DIR": str(cache_dir), **(env_extra or {})}
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _runs(sweep):
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


def _logged_objective(run_dir) -> tuple[str, float]:
    """The objective main() returned to the sweeper, as the run logged it."""
    name, value = OBJECTIVE.search((run_dir / "main.log").read_text()).groups()
    return name, float(value)


def test_joblib_sweep_runs_jobs_in_parallel_and_summarises(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    sweep = tmp_path / "sweep"
    r = _main(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=resnet1d", *TINY,
               "trainer.max_epochs=2", "seed=0,1", f"hydra.sweep.dir={sweep}"], data_dir, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    runs = _runs(sweep)
    assert [p.name for p in runs] == ["0", "1"]
    assert all((p / "metrics.json").is_file() and (p / ".hydra" / "overrides.yaml").is_file()
               for p in runs)
    # each run in its own worker process (a run directory's lock file names its process)
    assert len({(p / ".lock").read_text() for p in runs}) == 2
    s = subprocess.run([sys.executable, "scripts/summarise.py", str(sweep),
                        "--metrics", "val.macro_f1", "test.accuracy"],
                       cwd=REPO, capture_output=True, text=True)
    assert s.returncode == 0, s.stderr
    assert s.stdout.count("| 2 |") == 1 and "seed" not in s.stdout     # both seeds in one row
    assert (sweep / "summary.csv").is_file()


def test_optuna_search_optimises_each_trials_validation_metric(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    sweep = tmp_path / "search"
    r = _main(["-m", "+hparams_search=resnet1d_ucr", "hydra.sweeper.n_trials=3", *TINY,
               "trainer.max_epochs=3", f"hydra.sweep.dir={sweep}"], data_dir, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    # model.widths is fixed on the command line, so it leaves the search space
    assert set(result["best_params"]) == {"optimizer.lr", "trainer.batch_size"}
    runs = _runs(sweep)
    assert len(runs) == 3
    trials = []
    for run in runs:
        name, value = _logged_objective(run)
        assert name == "val.macro_f1"
        assert value == read_metrics(run)["val"]["macro_f1"]      # the validation metric, as written
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        trials.append((value, overrides))
    best_value, best_overrides = max(trials, key=lambda t: t[0])   # macro-F1 is maximised
    assert result["best_value"] == best_value
    for key, value in result["best_params"].items():
        assert f"{key}={value}" in best_overrides


def test_ssl_search_minimises_the_held_out_pretraining_loss(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    sweep = tmp_path / "search"
    r = _main(["-m", "+hparams_search=simclr_ucr", "hydra.sweeper.n_trials=2", *TINY_SIMCLR,
               f"hydra.sweep.dir={sweep}"], data_dir, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {"optimizer.lr", "optimizer.weight_decay"}
    values = []
    for run in _runs(sweep):
        metrics = read_metrics(run)
        assert "val" not in metrics and "test" in metrics     # the test metrics stay unused
        name, value = _logged_objective(run)
        assert (name, value) == ("val_last_epoch.loss", metrics["val_last_epoch"]["loss"])
        values.append(value)
    assert result["best_value"] == min(values)                 # a loss is minimised


def test_a_search_without_a_validation_objective_is_refused(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    # pretraining on the validation series too leaves no held-out loss: refused, not optimised
    r = _main(["-m", "+hparams_search=simclr_ucr", "hydra.sweeper.n_trials=1", *TINY_SIMCLR,
               "task.pretrain_splits=[train,val]", f"hydra.sweep.dir={tmp_path / 'ssl'}"],
              data_dir, cache_dir)
    assert r.returncode == 2 and "task.pretrain_splits=[train]" in r.stderr, r.stderr[-3000:]
    # a direction that does not match the monitored metric is refused
    r = _main(["-m", "+hparams_search=resnet1d_ucr", "hydra.sweeper.n_trials=1", *TINY,
               "trainer.max_epochs=1", "task.monitor=loss", f"hydra.sweep.dir={tmp_path / 'cls'}"],
              data_dir, cache_dir)
    assert r.returncode == 2 and "hydra.sweeper.direction=minimize" in r.stderr, r.stderr[-3000:]


def test_slurm_preset():
    r = subprocess.run([sys.executable, "main.py", "hydra/launcher=slurm",
                        "hydra.launcher.partition=gpu", "--cfg", "hydra", "--package", "hydra.launcher"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    launcher = yaml.safe_load(r.stdout)            # the hydra.launcher node
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["partition"] == "gpu" and launcher["gpus_per_node"] == 1
    assert launcher["timeout_min"] > 0 and launcher["max_num_timeout"] > 0


def test_requeued_job_resumes_its_run(data_dir, cache_dir, tmp_path):
    """A Slurm requeue starts the same job (same overrides, same directory) again: with
    trainer.resume=auto the run continues from its last checkpoint."""
    require_ucr(data_dir, "ECG200")
    sweep = tmp_path / "sweep"
    args = ["-m", "model=resnet1d", *TINY, "trainer.max_epochs=40", "seed=0", RESUME_ON_REQUEUE,
            f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "DATA_DIR": str(data_dir), "CACHE_DIR": str(cache_dir),
           "PYTHONUNBUFFERED": "1"}
    env.pop("SLURM_RESTART_COUNT", None)
    job = subprocess.Popen([sys.executable, "main.py", *args], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in job.stdout:                       # preempted after its first epoch
        if "epoch 1 |" in line:
            job.send_signal(signal.SIGKILL)
            break
    job.wait(timeout=60)
    assert not (sweep / "0" / "metrics.json").exists()
    r = _main(args, data_dir, cache_dir, {"SLURM_RESTART_COUNT": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = re.search(r"resumed from \S+ at epoch (\d+)", r.stdout + r.stderr)
    assert resumed and 1 <= int(resumed.group(1)) < 40
    assert read_metrics(sweep / "0")["epochs"] == 40
    before = json.loads((sweep / "0" / "metrics.json").read_text())
    # a job started again after the run finished: nothing left to train, the same results
    r = _main(args, data_dir, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["test"] == before["test"]
    # without trainer.resume=auto a new submission is refused instead of overwriting the run
    plain = [a for a in args if a != RESUME_ON_REQUEUE]
    r = _main(plain, data_dir, cache_dir)
    assert r.returncode == 2 and "already holds a run" in r.stderr
