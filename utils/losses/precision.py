"""Losses compute in fp32 under mixed precision: similarity matrices of raw dot products
(TS2Vec, CPC) and exponentials of scores overflow fp16 and lose digits in bf16, so the
formula functions run with autocast off and their half-precision tensor arguments in fp32.
In an fp32 (or fp64) run this changes nothing."""
from __future__ import annotations

import functools

import torch


LOW_PRECISION = (torch.float16, torch.bfloat16)


def _fp32(value):
    # only half-precision tensors move up: fp64 inputs keep their precision
    return value.float() if torch.is_tensor(value) and value.dtype in LOW_PRECISION else value


def fp32(fn):
    """Run ``fn`` with autocast off and its fp16/bf16 tensor arguments in fp32."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in (*args, *kwargs.values()) if torch.is_tensor(a)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*map(_fp32, args), **{k: _fp32(v) for k, v in kwargs.items()})
    return wrapper
