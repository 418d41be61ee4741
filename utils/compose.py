"""Compose the project's Hydra config outside main.py (scripts, tests, notebooks)."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_cfg(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []))


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """A script's arguments -> (its own options, Hydra overrides ``key=value``), so options that
    take several values never swallow an override that follows them."""
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    return [a for a in argv if a not in overrides], overrides
