"""The run's device and mixed-precision dtype from the trainer settings, refused by name when
the machine cannot give them."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceUnavailable(RuntimeError):
    """The configured device does not exist on this machine."""


def acquire_device(want: str, local_rank: int | None = None) -> torch.device:
    """trainer.device: auto (CUDA when available) | cpu | cuda | cuda:N. Under torchrun
    (``local_rank`` given) auto and cuda mean this process's GPU, cuda:<local rank>."""
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if local_rank is not None and want in ("auto", "cuda"):
        want = f"cuda:{local_rank}"
    elif want == "auto":
        return torch.device("cuda")
    if not want.startswith("cuda"):
        raise ValueError(f"trainer.device={want} is not valid; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"trainer.device={want} but CUDA is not available on this "
                           "machine; use trainer.device=cpu or trainer.device=auto")
    dev = torch.device(want)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"trainer.device={want} but only {torch.cuda.device_count()} "
                                f"CUDA device(s) exist; use cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    torch.cuda.set_device(dev)
    return dev


def amp_dtype(precision: str, device: torch.device):
    """trainer.precision: fp32 | bf16 | fp16 autocast. bf16 runs on CUDA and on the CPU; fp16
    (with its gradient scaler) is for CUDA, a CPU run of it is fp32."""
    if precision not in AMP_DTYPES:
        raise ValueError(f"trainer.precision={precision} is not valid; use fp32, bf16 or fp16")
    if precision == "fp16" and device.type != "cuda":
        log.warning("trainer.precision=fp16 is mixed precision for CUDA; running fp32 on %s "
                    "(trainer.precision=bf16 runs mixed precision on the CPU)", device)
        return None
    return AMP_DTYPES[precision]
