"""The set-prediction loss of DETR (Carion et al., ECCV 2020) and Deformable DETR (Zhu et al.,
ICLR 2021), for beats as intervals on the time axis (models/detr.py, models/deformable_detr.py).

Per window, the N predictions are matched one to one to the M target beats (Hungarian
algorithm, utils/detection/matching.py, without gradients) on the cost

    cost_class * C_class + cost_l1 * |box - target|_1 + cost_giou * (-GIoU(box, target)),

C_class being -p(target class) with a softmax (DETR) or the paper's focal matching cost
alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma (-log(1 - p)) with per-class sigmoids
(Deformable DETR). The loss then is

    weight_class * L_class + weight_l1 * L1 + weight_giou * (1 - GIoU)

with L_class the cross-entropy over K + 1 classes, the no-object class weighted eos_coef and
averaged by the class weights (DETR), or the sigmoid focal loss over all queries and classes
with matched queries' one-hot targets (Deformable DETR); L1 and 1 - GIoU are summed over the
matched pairs. Focal, L1 and GIoU are divided by the number of target beats in the batch (at
least 1; this process's batch, where the paper averages the count over its GPUs). The same
matching and loss apply to every decoder layer's outputs ("aux") and the layers' losses add
up; the logged parts are the final layer's.

1-D specifics: a target beat is the interval (R-peak position, box_width), both fractions of
the window; L1 is over (centre, width), GIoU the 1-D one of utils/detection/intervals.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.detection.intervals import paired_giou, pairwise_giou
from utils.detection.matching import hungarian
from utils.losses.precision import fp32

CLASSIFICATIONS = ("softmax", "focal")


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """The elementwise focal loss of RetinaNet (Lin et al. 2017) on sigmoid logits."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


class DETRLoss:
    def __init__(self, num_classes: int, box_width: float, classification: str = "softmax",
                 eos_coef: float = 0.1, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 cost_class: float = 1.0, cost_l1: float = 5.0, cost_giou: float = 2.0,
                 weight_class: float = 1.0, weight_l1: float = 5.0, weight_giou: float = 2.0):
        if classification not in CLASSIFICATIONS:
            raise ValueError(f"loss.classification={classification!r} is not known; choose softmax "
                             "(DETR: K classes + no object) or focal (Deformable DETR: K sigmoids)")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes={num_classes} must be at least 1")
        if not 0 < float(box_width) < 1:
            raise ValueError(f"box_width={box_width} must lie in (0, 1): a beat's interval as a "
                             "fraction of the window")
        for key, value in (("eos_coef", eos_coef), ("focal_gamma", focal_gamma),
                           ("cost_class", cost_class), ("cost_l1", cost_l1), ("cost_giou", cost_giou),
                           ("weight_class", weight_class), ("weight_l1", weight_l1),
                           ("weight_giou", weight_giou)):
            if not float(value) >= 0:
                raise ValueError(f"loss.{key}={value} must be >= 0")
        self.num_classes, self.box_width = int(num_classes), float(box_width)
        self.classification = classification
        self.class_key = "ce" if classification == "softmax" else "focal"
        self.eos_coef, self.alpha, self.gamma = float(eos_coef), float(focal_alpha), float(focal_gamma)
        self.cost_class, self.cost_l1, self.cost_giou = float(cost_class), float(cost_l1), float(cost_giou)
        self.weight_class, self.weight_l1, self.weight_giou = (float(weight_class), float(weight_l1),
                                                               float(weight_giou))

    # ------------------------------------------------------------------ targets and matching
    def targets(self, batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per window: (labels [M_b] int64, boxes [M_b, 2] (centre, box_width))."""
        pos, cls = batch["beat_pos"], batch["beat_cls"]
        out = []
        for p, c in zip(pos, cls):
            keep = c >= 0
            centre = p[keep].float()
            out.append((c[keep].long(), torch.stack([centre, torch.full_like(centre, self.box_width)], -1)))
        return out

    @torch.no_grad()
    def match(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list) -> list:
        """Per window: (prediction indices, target indices) of the minimum-cost assignment."""
        logits, boxes = logits.detach().float(), boxes.detach().float()
        out = []
        for b, (labels, tgt) in enumerate(targets):
            if labels.numel() == 0:
                empty = torch.empty(0, dtype=torch.long, device=logits.device)
                out.append((empty, empty))
                continue
            if self.classification == "softmax":
                c_class = -logits[b].softmax(-1)[:, labels]
            else:
                p = logits[b].sigmoid()[:, labels]
                pos = self.alpha * (1 - p) ** self.gamma * -(p + 1e-8).log()
                neg = (1 - self.alpha) * p ** self.gamma * -(1 - p + 1e-8).log()
                c_class = pos - neg
            cost = (self.cost_class * c_class + self.cost_l1 * torch.cdist(boxes[b], tgt, p=1)
                    - self.cost_giou * pairwise_giou(boxes[b], tgt))
            rows, cols = hungarian(cost)
            out.append((rows.to(logits.device), cols.to(logits.device)))
        return out

    # ------------------------------------------------------------------ one layer
    @fp32
    def layer_terms(self, logits: torch.Tensor, boxes: torch.Tensor, targets: list,
                    num_boxes: float) -> dict:
        """The class, L1 and GIoU terms of one decoder layer's outputs."""
        self._check(logits)
        indices = self.match(logits, boxes, targets)
        b_idx = torch.cat([torch.full_like(r, b) for b, (r, _) in enumerate(indices)])
        q_idx = torch.cat([r for r, _ in indices])
        labels = torch.cat([t[0][c] for t, (_, c) in zip(targets, indices)])
        tgt_boxes = torch.cat([t[1][c] for t, (_, c) in zip(targets, indices)]).to(boxes.dtype)
        if self.classification == "softmax":
            target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long,
                                        device=logits.device)
            target_classes[b_idx, q_idx] = labels
            weight = torch.ones(self.num_classes + 1, dtype=logits.dtype, device=logits.device)
            weight[-1] = self.eos_coef
            cls_loss = F.cross_entropy(logits.transpose(1, 2), target_classes, weight)
        else:
            onehot = torch.zeros_like(logits)
            onehot[b_idx, q_idx, labels] = 1.0
            cls_loss = sigmoid_focal_loss(logits, onehot, self.alpha, self.gamma).sum() / num_boxes
        matched = boxes[b_idx, q_idx]
        l1 = F.l1_loss(matched, tgt_boxes, reduction="sum") / num_boxes
        giou = (1 - paired_giou(matched, tgt_boxes)).sum() / num_boxes
        total = self.weight_class * cls_loss + self.weight_l1 * l1 + self.weight_giou * giou
        return {"loss": total, self.class_key: cls_loss, "l1": l1, "giou": giou}

    def _check(self, logits: torch.Tensor) -> None:
        want = self.num_classes + (1 if self.classification == "softmax" else 0)
        if logits.shape[-1] != want:
            raise ValueError(f"loss.classification={self.classification} takes {want} logits per "
                             f"query for num_classes={self.num_classes}; the model gives "
                             f"{logits.shape[-1]} (softmax pairs with DETR, focal with Deformable DETR)")

    # ------------------------------------------------------------------ the objective
    def __call__(self, outputs: dict, batch: dict) -> dict:
        targets = [(labels.to(outputs["boxes"].device), boxes.to(outputs["boxes"].device))
                   for labels, boxes in self.targets(batch)]
        num_boxes = float(max(sum(len(labels) for labels, _ in targets), 1))
        final = self.layer_terms(outputs["logits"], outputs["boxes"], targets, num_boxes)
        loss = final["loss"]
        for aux in outputs.get("aux", []):
            loss = loss + self.layer_terms(aux["logits"], aux["boxes"], targets, num_boxes)["loss"]
        parts = {k: final[k].detach() for k in (self.class_key, "l1", "giou")}
        return {"loss": loss, **parts}
