"""One command is one experiment:

    python main.py task=classification model=resnet1d data=ecg
    python main.py model=timesurl data=ecg
    python main.py -m model=resnet1d,transformer data=ucr data.name=ECG200 seed=0,1,2
    torchrun --nproc_per_node=4 main.py model=simclr data=ecg          # one experiment, 4 processes

A wrong value, a missing dataset or a run directory that may not take this run is refused with
one short paragraph (problem and fix) and exit status 2; HYDRA_FULL_ERROR=1 shows the traceback.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exp import get_exp_class
from utils import distributed
from utils.config_check import check_config
from utils.objective import sweep_objective
from utils.refusal import refuse, refuse_on_error
from utils.run_directory import RunDirectory, RunDirectoryError, resume_setting
from utils.seed import seed_everything

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Build the task's experiment, train it (unless the task has no training), test it.
    Under torchrun every rank trains (each with its own seed for augmentations and dropout;
    the model starts from rank 0's weights), then rank 0 alone tests and writes the results."""
    check_config(cfg)
    seed_everything(int(cfg.seed) + distributed.rank(), bool(cfg.trainer.deterministic))
    exp = get_exp_class(cfg.task.name)(cfg, run_dir)
    log.info("run dir: %s | device: %s", run_dir, exp.device)
    if cfg.task.get("train", True):
        exp.train()
    exp.end_distributed_training()
    main_rank = distributed.is_main()
    distributed.leave()
    return exp.test() if main_rank else {}


def admit(run_dir: RunDirectory, cfg: DictConfig, hc, overrides: list[str]) -> None:
    """Rank 0 locks the run directory, checks it may take this run and writes .hydra/; every
    rank learns the verdict, so all refuse together, and whether the run continues from its
    checkpoint (``trainer.resume=auto`` is decided here)."""
    problem, resume = None, None
    if distributed.is_main():
        try:
            run_dir.lock()
            resume = run_dir.admit(overrides, resume=resume_setting(cfg.trainer.resume),
                                   allow_changes=bool(cfg.trainer.get("resume_allow_changes", False)))
            run_dir.write_configs(cfg, hc, overrides)
        except RunDirectoryError as err:
            problem = str(err)
    problem, resume = distributed.broadcast_object((problem, resume))
    if problem:
        raise RunDirectoryError(problem)
    cfg.trainer.resume = resume          # what this start does: continue (true) or start (false)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One run; returns the monitored validation metric for a sweeper (utils/objective.py)."""
    hc = HydraConfig.get()
    if not distributed.is_main():
        logging.getLogger().setLevel(logging.WARNING)      # rank 0 reports
    # a refusal is printed, not logged: main.log may belong to another run of that directory
    with refuse_on_error():
        check_config(cfg)                   # before anything is written into the directory
        run_dir = RunDirectory(hc.runtime.output_dir)
        try:
            admit(run_dir, cfg, hc, list(hc.overrides.task))
            return sweep_objective(cfg, run(cfg, run_dir.path))
        finally:
            run_dir.unlock()


def one_run_directory_for_all_ranks(argv: list[str]) -> list[str]:
    """Under torchrun every rank must write into one directory: rank 0's default one (its
    timestamp) is given to all. A sweep (-m) launches one torchrun job per run instead."""
    if any(a in ("-m", "--multirun") for a in argv):
        refuse("torchrun runs one experiment; for a sweep, launch one torchrun job per setting "
               "(or use Hydra's launcher plugins, docs/sweeps.md)")
    if any(a.startswith("hydra.run.dir=") for a in argv):
        return argv
    chosen = None
    if distributed.is_main():
        from utils.compose import compose_cfg
        name = compose_cfg([a for a in argv if "=" in a and not a.startswith("hydra")]).run_name
        chosen = f"outputs/{name}/{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    return [*argv, f"hydra.run.dir={distributed.broadcast_object(chosen)}"]


if __name__ == "__main__":
    from utils.cli_check import exit_on_bad_overrides

    exit_on_bad_overrides(sys.argv[1:])
    distributed.init_from_env()             # torchrun: join the other ranks first
    if distributed.active():
        sys.argv[1:] = one_run_directory_for_all_ranks(sys.argv[1:])
    main()
