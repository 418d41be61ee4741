"""Several processes with the launcher PyTorch ships:

    torchrun --nproc_per_node=N main.py model=simclr data=ecg ...            # one machine
    torchrun --nnodes=M --node_rank=i --rdzv_endpoint=host:port --nproc_per_node=N main.py ...

Every rank runs the same loop on its own shard of each global batch (``trainer.batch_size``
per rank); gradients are averaged by DistributedDataParallel (NCCL on GPUs, gloo on CPUs).
Losses that compare samples with each other gather the whole global batch (``gather``, with a
gradient), so a contrastive loss sees as many negatives as one process with the global batch.
Only rank 0 writes (checkpoints, TensorBoard, metrics.json, .hydra/) and runs the downstream
protocol. Outside torchrun (no WORLD_SIZE), everything here is a no-op for one process.
"""
from __future__ import annotations

import datetime
import inspect
import os

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env() -> None:
    """Join the process group torchrun describes (env://); NCCL with CUDA, else gloo."""
    if env_world_size() > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))


def leave() -> None:
    """Every rank leaves the process group (after training: rank 0 then evaluates alone)."""
    if active():
        dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """rank ``src``'s value of ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj) -> list:
    """[rank 0's obj, rank 1's obj, ...] on every rank."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


class _Gather(torch.autograd.Function):
    """all_gather whose backward hands each rank the gradient of its own rows, summed over
    ranks (all_reduce: every backend has it, unlike reduce_scatter/all_to_all on gloo)."""

    @staticmethod
    def forward(ctx, tensor):
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order (the global batch), with
    a gradient back to each rank's own rows; the tensor itself in one process."""
    if not active():
        return tensor
    if tensor.requires_grad:
        return _Gather.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (a copy; no gradient)."""
    if not active():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def wrap(model: torch.nn.Module, device: torch.device, find_unused: bool = True):
    """The module batches go through: ``model`` itself in one process, else ``model`` in
    DistributedDataParallel, which starts every rank from rank 0's parameters and buffers.
    Buffers are not re-broadcast from rank 0 on every forward: the ones that must agree
    (queues, memory banks, centres) are updated from every rank's batch, and the batch-norm
    statistics kept and saved are rank 0's (trainer.sync_batchnorm=true synchronises them
    across GPUs instead). ``find_unused``: parameters a step may leave without a gradient
    (DINO's frozen last layer) are allowed."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused,
                                       forward_sync_buffers=False)
    ddp = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused,
                                  broadcast_buffers=False)
    for buffer in model.buffers():             # older torch: the start from rank 0's buffers
        dist.broadcast(buffer, 0)
    return ddp
