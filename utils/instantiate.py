"""Build objects from config nodes, passing data-dependent sizes only where the
constructor takes them (a model that has no use for ``num_classes`` never sees it)."""
from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

# Config keys that describe a component but are not constructor arguments.
# (optimizer.weight_decay_1d is read by utils/optim.py's parameter groups.)
NON_ARGS = ("name", "interval", "weight_decay_1d")


def target_parameters(target) -> set[str] | None:
    """The keyword names ``target`` takes; None when it takes any (``**kwargs``)."""
    params = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def accepted_kwargs(target, candidates: dict[str, Any]) -> dict[str, Any]:
    params = target_parameters(target)
    if params is None:
        return dict(candidates)
    return {k: v for k, v in candidates.items() if k in params}


def build(node: DictConfig, **candidates: Any):
    """instantiate(node) plus those ``candidates`` the target's signature accepts.
    Config values win over candidates of the same name."""
    cfg = OmegaConf.to_container(node, resolve=True)
    for k in NON_ARGS:
        cfg.pop(k, None)
    if "_target_" not in cfg:
        raise ValueError(f"config node has no _target_: {OmegaConf.to_yaml(node)}")
    target = get_class(cfg["_target_"]) if "." in cfg["_target_"] else None
    extra = accepted_kwargs(target, candidates) if target is not None else {}
    extra = {k: v for k, v in extra.items() if k not in cfg}
    return instantiate(cfg, **extra, _convert_="all")
