"""Process-wide torch settings from the trainer config, applied by Exp_Basic before any work
(so main.py, the benchmark scripts and tests that build an Exp all get them)."""
from __future__ import annotations

import torch
from omegaconf import DictConfig


def apply_runtime_settings(cfg: DictConfig) -> None:
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
