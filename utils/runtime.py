"""Process-wide torch settings from the trainer config, applied by Exp_Basic before any work
(so main.py, the benchmark scripts and tests that build an Exp all get them)."""
from __future__ import annotations

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
