"""One command is one experiment:

    python main.py task=classification model=resnet1d data=ecg
    python main.py model=timesurl data=ecg
    python main.py -m model=resnet1d,transformer data=ucr data.name=ECG200 seed=0,1,2
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exp import get_exp_class
from utils.config_check import check_config
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
def main(cfg: DictConfig) -> None:
    run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    import sys

    from utils.cli_check import exit_on_unknown_keys

    exit_on_unknown_keys(sys.argv[1:])
    main()
