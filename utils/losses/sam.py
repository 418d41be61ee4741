"""SAM's training objective (Kirillov et al., ICCV 2023) for the 1-D promptable segmenter
(models/sam.py):

    min over candidates (focal_weight * focal + dice_weight * dice) + iou_weight * iou_mse

- mask loss: the sigmoid focal loss (Lin et al. 2017, alpha 0.25, gamma 2) averaged over the
  steps, and the dice loss on the sigmoid probabilities with +1 smoothing (DETR's form), in
  the paper's 20:1 ratio. Each candidate mask is scored and, per sample, only the lowest is
  back-propagated, so the candidates are free to cover different readings of an ambiguous
  prompt;
- the IoU head: mean squared error between every predicted IoU and the actual IoU of its
  binarised mask (logits > 0) with the target, the actual IoU detached.

Targets: batch["target_mask"] [B, W] bool; batch["target_valid"] [B, W] bool (optional, steps
that count, e.g. those with a rhythm annotation; default all). Steps outside it add nothing to
any term. 1-D changes nothing in the formulas: the pixels are time steps."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.losses.precision import fp32


def mask_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """IoU of (logits > 0) with the bool target over the valid steps, on the last axis; the
    arguments broadcast ([B, M, W] logits with a [B, 1, W] target). An empty union gives 1.0."""
    pred, target = logits > 0, target.bool()
    if valid is None:
        valid = torch.ones_like(target)
    inter = (pred & target & valid.bool()).sum(-1)
    union = ((pred | target) & valid.bool()).sum(-1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union, dtype=torch.float32))


@fp32
def focal_dice(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
               alpha: float, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B, M, W], target and valid [B, W] bool -> (focal [B, M], dice [B, M])."""
    t = target.unsqueeze(1).to(logits.dtype).expand_as(logits)
    v = valid.unsqueeze(1).to(logits.dtype)
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    focal = ce * (1 - p_t) ** gamma
    if alpha >= 0:                                    # RetinaNet: alpha < 0 turns weighting off
        focal = (alpha * t + (1 - alpha) * (1 - t)) * focal
    focal = (focal * v).sum(-1) / v.sum(-1).clamp(min=1)
    p, t = p * v, t * v
    dice = 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)
    return focal, dice


class SAMLoss:
    def __init__(self, focal_weight: float = 20.0, dice_weight: float = 1.0, iou_weight: float = 1.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        for key, value in (("focal_weight", focal_weight), ("dice_weight", dice_weight),
                           ("iou_weight", iou_weight), ("focal_gamma", focal_gamma)):
            if not value >= 0:
                raise ValueError(f"loss.{key}={value} must be >= 0")
        if not focal_alpha <= 1:
            raise ValueError(f"loss.focal_alpha={focal_alpha} must be <= 1 (RetinaNet: 0.25; < 0: off)")
        self.focal_weight, self.dice_weight = float(focal_weight), float(dice_weight)
        self.iou_weight = float(iou_weight)
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)

    def __call__(self, outputs: dict, batch: dict) -> dict:
        masks, iou_pred = outputs["masks"], outputs["iou"]
        target = batch["target_mask"].bool()
        valid = batch.get("target_valid")
        valid = torch.ones_like(target) if valid is None else valid.bool()
        wanted = (masks.shape[0], masks.shape[-1])
        if masks.dim() != 3 or target.shape != wanted or valid.shape != target.shape:
            raise ValueError(f"SAMLoss takes masks [B, M, W] with target_mask (and target_valid) "
                             f"[B, W]; got {tuple(masks.shape)} and {tuple(target.shape)}, "
                             f"{tuple(valid.shape)}")
        focal, dice = focal_dice(masks, target, valid, self.focal_alpha, self.focal_gamma)
        per_mask = self.focal_weight * focal + self.dice_weight * dice              # B M
        best = per_mask.detach().argmin(1, keepdim=True)
        pick = lambda t: t.gather(1, best).squeeze(1)
        actual = mask_iou(masks.detach(), target.unsqueeze(1), valid.unsqueeze(1))
        iou_mse = F.mse_loss(iou_pred.float(), actual)
        return {"loss": pick(per_mask).mean() + self.iou_weight * iou_mse,
                "focal": pick(focal).mean(), "dice": pick(dice).mean(), "iou_mse": iou_mse}
