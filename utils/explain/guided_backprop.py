"""Guided Backpropagation (Springenberg et al. 2015, "Striving for Simplicity: The All
Convolutional Net") and Guided Grad-CAM (Selvaraju et al. 2017).

Guided backprop is the gradient of the class score with respect to the input, where every
ReLU passes back only positive gradients at positions where its input was positive:
    R_l = (f_l > 0) * (R_{l+1} > 0) * R_{l+1}.
The ordinary ReLU backward already applies (f_l > 0); a temporary backward hook on each
``nn.ReLU`` module clamps the result at zero. The hooks are removed (and in-place flags and
hook bookkeeping restored) afterwards, so the model is left exactly as it was.

Only ``nn.ReLU`` modules are seen: ReLUs called functionally (``F.relu``, ``torch.relu``) in
a forward method cannot be hooked and would pass negative gradients; the function refuses
models without any nn.ReLU module. Other activations (GELU, ...) are left as they are.

Guided Grad-CAM is the element-wise product of the guided backprop map [B, T, C] and the
Grad-CAM map [B, T] (already at the input's length), broadcast over channels.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .common import forward_logits, target_scores


class NoReLUModules(ValueError):
    """Guided backprop found no nn.ReLU module to guide."""


def _positive_grad(module, grad_input, grad_output):
    return tuple(g.clamp(min=0) if g is not None else None for g in grad_input)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                    forward_kwargs: Mapping[str, Any] | None = None) -> torch.Tensor:
    """Guided backprop map of class ``target[b]`` for each sample: [B, T, C] like ``x``."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise NoReLUModules(f"guided backprop needs nn.ReLU modules, and {type(model).__name__} "
                         f"has none (functional F.relu calls cannot be hooked); use Grad-CAM")
    saved = [(m, m.inplace, m._is_full_backward_hook) for m in relus]
    handles = []
    try:
        for m in relus:
            m.inplace = False        # full backward hooks refuse in-place outputs
            handles.append(m.register_full_backward_hook(_positive_grad))
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = forward_logits(model, xg, forward_kwargs)
            grad, = torch.autograd.grad(target_scores(logits, target).sum(), xg)
    finally:
        for h in handles:
            h.remove()
        for m, inplace, full_flag in saved:
            m.inplace = inplace
            m._is_full_backward_hook = full_flag
    return grad.detach()


def guided_gradcam(guided: torch.Tensor, cam_map: torch.Tensor) -> torch.Tensor:
    """Guided Grad-CAM: guided backprop [B, T, C] times Grad-CAM [B, T] -> [B, T, C]."""
    if guided.shape[:2] != cam_map.shape:
        raise ValueError(f"guided backprop map {tuple(guided.shape)} and Grad-CAM map "
                         f"{tuple(cam_map.shape)} must share [batch, time]")
    return guided * cam_map[..., None]
