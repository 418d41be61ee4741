"""Processes for tests/test_distributed.py: each joins a gloo process group on 127.0.0.1 as
torchrun would describe it (RANK, WORLD_SIZE, MASTER_ADDR/PORT), runs one scenario and saves
what it saw to <out>/rank<r>.pt for the test to compare."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(scenario: str, world: int, out: Path, **kwargs) -> list[dict]:
    """Run ``scenario`` on ``world`` ranks; the per-rank results."""
    import torch.multiprocessing as mp
    Path(out).mkdir(parents=True, exist_ok=True)
    port = free_port()
    mp.spawn(_entry, args=(world, port, scenario, str(out), kwargs), nprocs=world, join=True)
    return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _entry(rank: int, world: int, port: int, scenario: str, out: str, kwargs: dict) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from utils import distributed
    distributed.init_from_env()
    try:
        result = SCENARIOS[scenario](rank=rank, **kwargs)
    finally:
        if distributed.active():
            distributed.leave()
    torch.save(result, Path(out) / f"rank{rank}.pt")


def gathered_nt_xent(rank: int, z1, z2) -> dict:
    """This rank's rows of (z1, z2) through NTXentLoss, which gathers the global batch."""
    from utils.losses.simclr import NTXentLoss
    rows = slice(rank * (len(z1) // 2), (rank + 1) * (len(z1) // 2))
    a, b = z1[rows].clone().requires_grad_(), z2[rows].clone().requires_grad_()
    loss = NTXentLoss(0.5)({"z1": a, "z2": b}, {})
    loss.backward()
    return {"loss": loss.item(), "grad1": a.grad, "grad2": b.grad}


def train_steps(rank: int, overrides: list[str], run_dir: str, kill_at: int | None = None,
                resume: bool = False) -> dict:
    """Build the experiment as main.run does (seed + rank) and train; optionally stop every
    rank right after optimizer step ``kill_at`` (a kill), or resume from last.pt."""
    from exp import get_exp_class
    from exp.exp_basic import Exp_Basic
    from tests.helpers import compose_cfg
    from utils.seed import seed_everything
    cfg = compose_cfg([*overrides, *(["trainer.resume=true"] if resume else [])])
    seed_everything(int(cfg.seed) + rank)
    exp = get_exp_class(cfg.task.name)(cfg, run_dir)
    if kill_at is not None:
        original = Exp_Basic._after_optimizer_step

        def crash(self):
            original(self)
            if self.state["step"] == kill_at:
                raise KeyboardInterrupt("simulated kill")

        Exp_Basic._after_optimizer_step = crash
    try:
        exp.train()
    except KeyboardInterrupt:
        pass
    return {"state": {k: v.detach().clone() for k, v in exp.model.state_dict().items()},
            "step": exp.state["step"], "batches": len(exp._loader("train", True, 0))}


SCENARIOS = {"gathered_nt_xent": gathered_nt_xent, "train_steps": train_steps}
