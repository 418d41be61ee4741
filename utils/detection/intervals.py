"""1-D intervals ("boxes" on the time axis) as (centre, width), in units of the window length.

The 1-D forms of the box arithmetic detectors share: DETR's L1 + generalised IoU costs (Rezatofighi
et al. 2019: GIoU = IoU - |hull minus union| / |hull|), YOLO's IoU-based confidence target.
"""
from __future__ import annotations

import torch


def to_edges(cw: torch.Tensor) -> torch.Tensor:
    """[..., 2] (centre, width) -> [..., 2] (left, right)."""
    c, w = cw.unbind(-1)
    return torch.stack([c - w / 2, c + w / 2], dim=-1)


def to_centre_width(lr: torch.Tensor) -> torch.Tensor:
    """[..., 2] (left, right) -> [..., 2] (centre, width)."""
    left, right = lr.unbind(-1)
    return torch.stack([(left + right) / 2, right - left], dim=-1)


def _pairwise(a: torch.Tensor, b: torch.Tensor):
    """Edges of [N, 2] and [M, 2] centre/width intervals, broadcast to [N, M]."""
    ea, eb = to_edges(a), to_edges(b)
    la, ra = ea[:, None, 0], ea[:, None, 1]
    lb, rb = eb[None, :, 0], eb[None, :, 1]
    return la, ra, lb, rb


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every interval of a [N, 2] with every one of b [M, 2] -> [N, M]."""
    la, ra, lb, rb = _pairwise(a, b)
    inter = (torch.minimum(ra, rb) - torch.maximum(la, lb)).clamp(min=0)
    union = (ra - la) + (rb - lb) - inter
    return inter / union.clamp(min=1e-12)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU [N, M] in [-1, 1]: IoU minus the share of the hull covered by neither."""
    la, ra, lb, rb = _pairwise(a, b)
    inter = (torch.minimum(ra, rb) - torch.maximum(la, lb)).clamp(min=0)
    union = (ra - la) + (rb - lb) - inter
    hull = torch.maximum(ra, rb) - torch.minimum(la, lb)
    iou = inter / union.clamp(min=1e-12)
    return iou - (hull - union) / hull.clamp(min=1e-12)


def paired_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of a[i] with b[i] ([N, 2] each) -> [N]."""
    ea, eb = to_edges(a), to_edges(b)
    inter = (torch.minimum(ea[:, 1], eb[:, 1]) - torch.maximum(ea[:, 0], eb[:, 0])).clamp(min=0)
    union = a[:, 1] + b[:, 1] - inter
    hull = torch.maximum(ea[:, 1], eb[:, 1]) - torch.minimum(ea[:, 0], eb[:, 0])
    return inter / union.clamp(min=1e-12) - (hull - union) / hull.clamp(min=1e-12)


def nms_1d(intervals: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept intervals [N, 2], best score first;
    an interval is dropped when its IoU with a kept, higher-scoring one exceeds the threshold."""
    order = torch.argsort(scores, descending=True)
    if order.numel() == 0:
        return order
    iou = pairwise_iou(intervals[order], intervals[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=intervals.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]
