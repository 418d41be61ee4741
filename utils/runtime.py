"""Process-wide torch settings from the trainer config, applied by Exp_Basic before any work
(so main.py, the benchmark scripts and tests that build an Exp all get them)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch
from omegaconf import DictConfig


# oneDNN (torch's CPU convolutions) compiles a kernel per convolution shape and keeps 1024 of
# them by default. TS2Vec-style random crops give every step new lengths, so the dilated
# encoders' convolutions (x forward/backward passes) overflow that cache and recompile most
# steps: a larger cache made their CPU training ~1.4x faster for a few tens of MB. Read by
# oneDNN at its first convolution; a value already in the environment wins.
ONEDNN_CACHE_ENTRIES = "16384"


def apply_runtime_settings(cfg: DictConfig) -> None:
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_ENTRIES)
    if cfg.trainer.get("num_threads"):
        torch.set_num_threads(int(cfg.trainer.num_threads))
    # Subnormal floats (|x| < 1.2e-38: e.g. Adam moments of rarely-updated weights after a few
    # epochs) take a slow microcode path on x86 CPUs: TF-C's MIT-BIH epochs grew from 20 s to
    # 60-80 s without this. Flushing them to zero changes values below 1e-38 only.
    torch.set_flush_denormal(bool(cfg.trainer.get("flush_denormal", True)))
    if torch.cuda.is_available() and not bool(cfg.trainer.get("deterministic", False)):
        # TF32 matmuls/convolutions and cuDNN's autotuner: the speed a GPU run expects; a
        # deterministic run keeps full fp32 and fixed algorithms
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None)
    except OSError:
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Give the pages of the C heap's free blocks back to the system; True where the C library
    can (glibc). glibc keeps the blocks that tensors of one phase (a training epoch, an
    evaluation pass, encoding a split) freed in its heap, and the next phase's tensors of other
    sizes do not always fit them, so the resident memory grew by hundreds of MB from one run to
    the next with the same settings. Called between phases: ~ms each, the computation unchanged."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
