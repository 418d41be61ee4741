"""One command is one experiment:

    python main.py task=classification model=resnet1d data=ecg
    python main.py model=timesurl data=ecg
    python main.py -m model=resnet1d,transformer data=ucr data.name=ECG200 seed=0,1,2

A wrong value, a missing dataset or a run directory that may not take this run is refused with
one short paragraph (problem and fix) and exit status 2; HYDRA_FULL_ERROR=1 shows the traceback.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exp import get_exp_class
from utils.config_check import check_config
from utils.objective import sweep_objective
from utils.refusal import refuse_on_error
from utils.run_directory import RunDirectory
from utils.seed import seed_everything

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Build the task's experiment, train it (unless the task has no training), test it."""
    check_config(cfg)
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    exp = get_exp_class(cfg.task.name)(cfg, run_dir)
    log.info("run dir: %s | device: %s", run_dir, exp.device)
    if cfg.task.get("train", True):
        exp.train()
    return exp.test()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One run; returns the monitored validation metric for a sweeper (utils/objective.py)."""
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    # a refusal is printed, not logged: main.log may belong to another run of that directory
    with refuse_on_error(), RunDirectory(hc.runtime.output_dir) as run_dir:
        check_config(cfg)                   # before anything is written into the directory
        run_dir.admit(overrides, resume=bool(cfg.trainer.resume),
                      allow_changes=bool(cfg.trainer.get("resume_allow_changes", False)))
        run_dir.write_configs(cfg, hc, overrides)
        return sweep_objective(cfg, run(cfg, run_dir.path))


if __name__ == "__main__":
    from utils.cli_check import exit_on_bad_overrides

    exit_on_bad_overrides(sys.argv[1:])
    main()
