"""Checkpoints of a run: ``checkpoints/last.pt`` and ``best.pt``, written atomically
(utils/atomic.py), each holding model, optimizer, scheduler, AMP scaler, loop state and
every RNG state, so a killed run resumes exactly; loaded as data only (weights_only)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from utils.atomic import save_atomic
from utils.seed import set_rng_state


def checkpoint_file(value, key: str, source: str) -> Path:
    """The checkpoint a config key names (``key``=``value``), checked before any work;
    ``source`` says which run writes it (e.g. "a task=pretrain run")."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist; give the best.pt (or last.pt) "
                                f"of {source}")
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; give the path of a run's "
                                f"checkpoints/best.pt or checkpoints/last.pt")
    # weights_only: a checkpoint is data, never code to run.
    return torch.load(path, map_location=map_location, weights_only=True)


def strip_wrappers(state_dict: dict) -> dict:
    """Model weights saved from a wrapped module (DistributedDataParallel's ``module.``,
    torch.compile's ``_orig_mod.``) under the plain module's names."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def cpu_copy(obj):
    """A copy of a checkpoint dict whose tensors no longer follow the live model/optimizer."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class Checkpointer:
    """Writes last.pt after every ``every``-th epoch and after the last one, best.pt with it.
    A best epoch in between is held in memory (a CPU copy) until the next write, so tiny
    epochs of a large model (DINO's 65,536-way head on 100 series) do not spend their time
    on disk; a kill loses at most ``every`` - 1 epochs, which a resumed run replays to the
    same result."""

    def __init__(self, ckpt_dir: str | os.PathLike, every: int = 1):
        self.dir = Path(ckpt_dir)
        self.every = max(int(every or 1), 1)
        self.pending_best: dict | None = None

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"

    def refuse_overwrite(self) -> None:
        """A fresh run never overwrites another run's checkpoints."""
        if self.last.exists():
            raise FileExistsError(
                f"{self.dir} already holds checkpoints of a run; continue it with "
                "trainer.resume=true, or start a new run in another hydra.run.dir")

    def write(self, snapshot: Callable[[], dict], epoch: int, improved: bool, final: bool) -> None:
        """After epoch ``epoch`` (1-based): ``snapshot()`` is the checkpoint dict."""
        write = final or epoch % self.every == 0
        if improved:
            self.pending_best = snapshot() if write else cpu_copy(snapshot())
        if write:
            save_atomic(snapshot(), self.last)
            if self.pending_best is not None:
                save_atomic(self.pending_best, self.dir / "best.pt")
                self.pending_best = None

    @staticmethod
    def snapshot(model, optimizer, scheduler, scaler, state: dict, config: str,
                 rng: list[dict]) -> dict:
        """The checkpoint dict: everything a resumed run needs to continue exactly; ``rng``
        holds every rank's RNG states (one for one process)."""
        ckpt = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,   # closed-form fits
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "state": state,
            "rng": rng[0],
            "config": config,
        }
        if len(rng) > 1:
            ckpt["rng_ranks"] = rng
        return ckpt

    def resume(self, model, optimizer, scheduler, scaler, rank: int = 0, world: int = 1) -> dict:
        """Restore last.pt into the live objects and the RNGs; returns the loop state. Loaded
        on the CPU: load_state_dict moves each tensor to its module's device, and the RNG
        states must stay CPU byte tensors."""
        if not self.last.is_file():
            raise FileNotFoundError(
                f"trainer.resume=true but {self.last} does not exist; resume needs the run "
                "directory of the interrupted run: pass hydra.run.dir=<that run dir>")
        ckpt = load_checkpoint(self.last, map_location="cpu")
        saved_world = len(ckpt.get("rng_ranks", [None]))
        if saved_world != world:
            raise ValueError(f"{self.last} was written by {saved_world} process(es), this run has "
                             f"{world}: resume with the same number of processes (torchrun "
                             "--nproc_per_node / --nnodes), so every rank continues its own batches")
        model.load_state_dict(strip_wrappers(ckpt["model"]))
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng_ranks"][rank] if world > 1 else ckpt["rng"])
        return dict(ckpt["state"])

    def path(self, which: str) -> Path:
        return self.dir / f"{which}.pt"
