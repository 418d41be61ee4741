"""The run's device and mixed-precision dtype from the trainer settings, refused by name when
the machine cannot give them."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceUnavailable(RuntimeError):
    """The configured device does not exist on this machine."""


def acquire_device(want: str) -> torch.device:
    """trainer.device: auto (CUDA when available) | cpu | cuda | cuda:N."""
    if want in ("auto", "cpu"):
        return torch.device("cuda" if want == "auto" and torch.cuda.is_available() else "cpu")
    if not want.startswith("cuda"):
        raise ValueError(f"trainer.device={want} is not valid; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"trainer.device={want} but CUDA is not available on this "
                           "machine; use trainer.device=cpu or trainer.device=auto")
    dev = torch.device(want)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"trainer.device={want} but only {torch.cuda.device_count()} "
                           f"CUDA device(s) exist; use cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return dev


def amp_dtype(precision: str, device: torch.device):
    """trainer.precision: fp32 | bf16 | fp16; mixed precision is for CUDA, a CPU run is fp32."""
    if precision not in AMP_DTYPES:
        raise ValueError(f"trainer.precision={precision} is not valid; use fp32, bf16 or fp16")
    if AMP_DTYPES[precision] is not None and device.type != "cuda":
        log.warning("trainer.precision=%s is mixed precision for CUDA; running fp32 on %s",
                    precision, device)
        return None
    return AMP_DTYPES[precision]
