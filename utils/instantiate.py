"""Build objects from config nodes, passing data-dependent sizes only where the
constructor takes them (a model that has no use for ``num_classes`` never sees it)."""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

# Config keys that describe a component but are not constructor arguments.
# (optimizer.weight_decay_1d is read by utils/optim.py's parameter groups.)
NON_ARGS = ("name", "interval", "weight_decay_1d", "lr_scale_batch")


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


# A config read from a file (a checkpoint, a run directory) builds only these: the project's
# own packages and torch's, never an arbitrary callable a file names.
TRUSTED_PACKAGES = ("models", "layers", "utils", "data_provider", "exp", "torch")
UNTRUSTED_TORCH = ("torch.hub", "torch.utils.cpp_extension", "torch.package", "torch.jit",
                   "torch.load", "torch.compile")


def untrusted_targets(node, source: str, path: str = "") -> list[str]:
    """Every ``_target_`` of ``node`` (a config read from ``source``) that is not a class of
    the project's own packages or of torch, as "key=target" strings."""
    bad = []
    if OmegaConf.is_dict(node) or isinstance(node, dict):
        items = node.items_ex(resolve=False) if OmegaConf.is_dict(node) else node.items()
        for key, value in items:
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                if not _trusted_class(str(value)):
                    bad.append(f"{where}={value}")
            else:
                bad += untrusted_targets(value, source, where)
    elif OmegaConf.is_list(node) or isinstance(node, list):
        for i, value in enumerate(node):
            bad += untrusted_targets(value, source, f"{path}[{i}]")
    return bad


def _trusted_class(target: str) -> bool:
    if target.split(".")[0] not in TRUSTED_PACKAGES or target.startswith(UNTRUSTED_TORCH):
        return False
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):          # the longest importable module prefix
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
        return inspect.isclass(obj)
    return False


def refuse_untrusted_targets(node, source: str) -> None:
    """A config read from a file may only build the project's classes and torch's."""
    bad = untrusted_targets(node, source)
    if bad:
        raise ValueError(f"the config in {source} names classes outside this project and torch "
                         f"({', '.join(bad[:3])}); a config read from a checkpoint or run "
                         "directory only builds the project's own classes, so it is refused. "
                         "Use a checkpoint written by this framework's main.py")
