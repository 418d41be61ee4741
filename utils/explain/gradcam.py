"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"), for 1-D models.

For a chosen layer with activations A^k(t) and the class score y^c (before the softmax):
    alpha_k^c = mean_t  d y^c / d A^k(t)              (gradients, average-pooled over time)
    L^c(t)    = ReLU( sum_k alpha_k^c A^k(t) )          (weighted maps, positive part)
then L^c is stretched to the input's length by 1-D linear interpolation.

Any module of any model can be chosen by its name in ``model.named_modules()``
(``task.layer``). Its output must be a tensor [B, channels, time] or [B, time, channels];
a tuple output uses its first element. ``layout="auto"`` reads channels first for modules
that contain a Conv1d, BatchNorm1d or 1-D pooling, channels last for modules that contain a
Linear, LayerNorm, attention or recurrent layer (the [B, tokens, features] convention), and
for parameter-free modules (ReLU, Dropout, ...) channels last only when dim 1 has the input's
length. Set ``layout`` (task.layout) where this guess is wrong.
The default layer is the last module (in forward order) that contains a Conv1d and outputs
[B, C, T]: for a plain CNN the last conv layer, for models/resnet1d.py the whole conv stack
``blocks`` (the maps that are average-pooled), where Grad-CAM equals CAM / T after the ReLU.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .common import forward_logits, target_scores, upsample_to

LAYOUTS = ("auto", "channels_first", "channels_last")


def _first_tensor(out: Any) -> torch.Tensor | None:
    if torch.is_tensor(out):
        return out
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]
    return None


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv1d) for m in module.modules())


def conv_layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv1d)]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        convs = conv_layer_names(model)
        raise ValueError(f"layer '{name}' (task.layer) is not a module of "
                         f"{type(model).__name__}; conv layers: {', '.join(convs) or 'none'}; "
                         f"list all names with [n for n, _ in model.named_modules()]")
    return modules[name]


def default_layer(model: nn.Module, x: torch.Tensor,
                  forward_kwargs: Mapping[str, Any] | None = None) -> str:
    """Name of the last module, in forward order, that contains a Conv1d and outputs a
    3-D tensor (see the module docstring)."""
    order: list[tuple[str, bool]] = []
    hooks = []
    for name, module in model.named_modules():
        if name and _has_conv(module):
            def hook(m, a, out, name=name):
                t = _first_tensor(out)
                order.append((name, t is not None and t.dim() == 3))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward_logits(model, x, forward_kwargs)
    finally:
        for h in hooks:
            h.remove()
    candidates = [n for n, ok in order if ok]
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no Conv1d layer with a [batch, channels, "
                         f"time] output to default to; choose one with task.layer=<module name>")
    return candidates[-1]


CONV_LIKE = (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d,
             nn.AdaptiveMaxPool1d, nn.InstanceNorm1d)
TOKEN_LIKE = (nn.Linear, nn.LayerNorm, nn.MultiheadAttention, nn.RNNBase)


def _guess_layout(layer: nn.Module, a: torch.Tensor, length: int) -> str:
    subs = list(layer.modules())
    if any(isinstance(m, CONV_LIKE) for m in subs):
        return "channels_first"
    if any(isinstance(m, TOKEN_LIKE) for m in subs):
        return "channels_last"
    return "channels_last" if a.shape[1] == length and a.shape[2] != length else "channels_first"


def _to_channels_first(a: torch.Tensor, layer: nn.Module, layout: str,
                       length: int) -> torch.Tensor:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout '{layout}' (task.layout); choose one of {LAYOUTS}")
    if layout == "auto":
        layout = _guess_layout(layer, a, length)
    return a.transpose(1, 2) if layout == "channels_last" else a


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str | None = None,
            forward_kwargs: Mapping[str, Any] | None = None, relu: bool = True,
            layout: str = "auto") -> torch.Tensor:
    """Grad-CAM of class ``target[b]`` at ``layer`` for each sample: [B, T] (input length).

    ``relu=False`` returns the weighted sum before the ReLU (useful to compare with CAM).
    Gradients are taken with torch.autograd.grad, so parameters' ``.grad`` stay untouched.
    Put the model in eval mode first: samples must not interact (BatchNorm batch statistics)."""
    name = layer or default_layer(model, x, forward_kwargs)
    module = get_layer(model, name)
    captured: list[torch.Tensor] = []

    def keep(m, a, out):
        t = _first_tensor(out)
        if t is not None:
            captured.append(t)

    handle = module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = forward_logits(model, x, forward_kwargs)
            if not captured:
                raise ValueError(f"layer '{name}' did not run (or returned no tensor) in the "
                                 f"forward pass; choose another task.layer")
            if len(captured) > 1:
                raise ValueError(f"layer '{name}' runs {len(captured)} times per forward pass; "
                                 f"choose a module that runs once")
            acts = captured[0]
            if acts.dim() != 3 or acts.shape[0] != x.shape[0]:
                raise ValueError(f"layer '{name}' outputs shape {tuple(acts.shape)}; Grad-CAM "
                                 f"needs [batch, channels, time] or [batch, time, channels]")
            if not acts.requires_grad:
                raise ValueError(f"layer '{name}' output does not depend on trainable "
                                 f"computation (no gradient); choose another task.layer")
            # Samples are independent in eval mode, so one backward of the summed scores
            # gives each sample's own gradients.
            grads, = torch.autograd.grad(target_scores(logits, target).sum(), acts)
    finally:
        handle.remove()
    a = _to_channels_first(acts.detach(), module, layout, x.shape[1])
    g = _to_channels_first(grads, module, layout, x.shape[1])
    alpha = g.mean(dim=-1, keepdim=True)                     # [B, K, 1]
    m = (alpha * a).sum(dim=1)                               # [B, T']
    if relu:
        m = m.clamp(min=0)
    return upsample_to(m, x.shape[1])
