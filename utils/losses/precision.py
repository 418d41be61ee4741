"""Losses compute in fp32 under mixed precision: similarity matrices of raw dot products
(TS2Vec, CPC) and exponentials of scores overflow fp16 and lose digits in bf16, so the
formula functions run with autocast off and their floating-point tensor arguments in fp32.
In an fp32 run this changes nothing (the casts are no-ops)."""
from __future__ import annotations

import functools

import torch


def _fp32(value):
    return value.float() if torch.is_tensor(value) and value.is_floating_point() else value


def fp32(fn):
    """Run ``fn`` with autocast off and its floating-point tensor arguments in fp32."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in (*args, *kwargs.values()) if torch.is_tensor(a)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*map(_fp32, args), **{k: _fp32(v) for k, v in kwargs.items()})
    return wrapper
