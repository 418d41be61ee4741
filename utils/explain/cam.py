"""Class Activation Maps (Zhou et al. 2016, "Learning Deep Features for Discriminative
Localization").

For a network whose last convolutional maps f_k(t) are globally average pooled and fed to a
linear classifier, the class score is y^c = sum_k w_k^c * mean_t f_k(t) + b^c, so
M_c(t) = sum_k w_k^c f_k(t) says how much each time step adds to y^c (mean_t M_c = y^c - b^c).

The protocol a model must follow (models/resnet1d.py does):
  * ``model.feature_maps(x)`` returns the last convolutional maps [B, K, T'] for x [B, T, C];
  * ``model.fc`` is the ``nn.Linear`` classifier, called once, as the last step of forward;
    its first K inputs are the time average of those maps. Further inputs (e.g. RR-interval
    features) are constant in time, so they add nothing to the map and are left out.
``cam`` checks this on the batch it explains (hooks on ``fc`` during one forward pass) and
refuses other models with a message; Grad-CAM works for any model.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .common import forward_logits, upsample_to


class NotCAMCompatible(ValueError):
    """The model lacks the global-average-pooling + linear ending CAM needs."""


def _structure_error(model: nn.Module, why: str) -> NotCAMCompatible:
    return NotCAMCompatible(
        f"CAM needs a model ending in global average pooling + one linear layer: "
        f"{type(model).__name__} {why}. Expose `feature_maps(x) -> [B, K, T]` and `fc` "
        f"(nn.Linear fed with the time-mean of those maps), or use Grad-CAM, which works "
        f"for any model (method gradcam, task.layer=<module name>).")


def check_cam_structure(model: nn.Module, x: torch.Tensor,
                        forward_kwargs: Mapping[str, Any] | None = None,
                        atol: float = 1e-4) -> torch.Tensor:
    """Verify the GAP + linear protocol on ``x``; return the feature maps [B, K, T']."""
    if not callable(getattr(model, "feature_maps", None)):
        raise _structure_error(model, "has no `feature_maps` method")
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise _structure_error(model, "has no `fc` attribute of type nn.Linear")
    with torch.no_grad():
        maps = model.feature_maps(x)
        if maps.dim() != 3 or maps.shape[0] != x.shape[0]:
            raise _structure_error(model, f"returns feature maps of shape {tuple(maps.shape)}, "
                                          "not [batch, channels, time]")
        k = maps.shape[1]
        if fc.in_features < k:
            raise _structure_error(model, f"has fc.in_features={fc.in_features} < "
                                          f"{k} feature-map channels")
        seen: dict[str, list[torch.Tensor]] = {"in": [], "out": []}
        hooks = [fc.register_forward_pre_hook(lambda m, a: seen["in"].append(a[0])),
                 fc.register_forward_hook(lambda m, a, o: seen["out"].append(o))]
        try:
            logits = forward_logits(model, x, forward_kwargs)
        finally:
            for h in hooks:
                h.remove()
    if len(seen["in"]) != 1:
        raise _structure_error(model, f"calls fc {len(seen['in'])} times in forward, not once")
    scale = 1.0 + maps.abs().mean().item()
    if not torch.allclose(seen["in"][0][:, :k], maps.mean(dim=-1), atol=atol * scale):
        raise _structure_error(model, "does not feed the time-mean of feature_maps(x) into fc")
    if not torch.allclose(seen["out"][0], logits, atol=atol * (1.0 + logits.abs().mean().item())):
        raise _structure_error(model, "changes the output of fc before returning it")
    return maps


def cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
        forward_kwargs: Mapping[str, Any] | None = None, relu: bool = False) -> torch.Tensor:
    """CAM of class ``target[b]`` for each sample: [B, T] (the input's length).

    The map is signed as in the paper (negative = evidence against the class);
    ``relu=True`` keeps the positive part, which is what Grad-CAM shows.
    Put the model in eval mode first (BatchNorm running statistics)."""
    maps = check_cam_structure(model, x, forward_kwargs)
    k = maps.shape[1]
    target = torch.as_tensor(target, device=maps.device).long().reshape(-1)
    weights = model.fc.weight[target, :k].detach()            # [B, K]
    m = torch.einsum("bk,bkt->bt", weights, maps)
    if relu:
        m = m.clamp(min=0)
    return upsample_to(m, x.shape[1]).detach()
