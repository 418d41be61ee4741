"""YOLO v1's sum-squared error (Redmon et al., CVPR 2016, eq. 3) for beats as intervals on the
time axis (models/yolo.py).

Each target beat belongs to the cell containing its centre; of that cell's B predictors, the one
whose predicted interval has the highest IoU with the beat is "responsible" for it. Then

    coord = lambda_coord * sum_resp [(x - x^)^2 + (sqrt w - sqrt w^)^2]
    obj   =                sum_resp (C - C^)^2,   C = IoU(predicted, target), detached
    noobj = lambda_noobj * sum_other C^^2          (every predictor not responsible)
    cls   =                sum_cells with a beat  sum_k (p_k - p^_k)^2

x being the beat's centre relative to its cell (in [0, 1)), w its width (box_width) as a fraction
of the window. loss = coord + obj + noobj + cls, each part logged with its weight in it. The paper
sums over an image; here the sums are divided by the batch size.

Several beats in one cell (1-D specific only in that it is rarer: at S = 64 a cell of a 10 s
window is 0.16 s, shorter than any RR interval): each takes a distinct predictor of the cell,
the one of highest IoU still free, a predictor wanted by several going to the beat it overlaps
most; beats left once the B predictors are taken have no predictor (no coord or obj term) and are
counted as ``dropped``. The class target of a cell is the mean one-hot of all its beats, dropped
ones included (v1 has one class set per cell; the mean minimises the summed per-beat errors).
"""
from __future__ import annotations

import math

import torch

from utils.detection.intervals import to_edges
from utils.losses.precision import fp32


def interval_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise IoU of (centre, width) intervals a [..., 2] and b [..., 2] (broadcast) -> [...]."""
    ea, eb = to_edges(a), to_edges(b)
    inter = (torch.minimum(ea[..., 1], eb[..., 1]) - torch.maximum(ea[..., 0], eb[..., 0])).clamp(min=0)
    union = a[..., 1] + b[..., 1] - inter
    return inter / union.clamp(min=1e-12)


class YOLOLoss:
    def __init__(self, num_classes: int, box_width: float, num_cells: int = 64,
                 boxes_per_cell: int = 2, lambda_coord: float = 5.0, lambda_noobj: float = 0.5):
        for key, value in (("num_classes", num_classes), ("num_cells", num_cells),
                           ("boxes_per_cell", boxes_per_cell)):
            if int(value) < 1:
                raise ValueError(f"loss.{key}={value} must be at least 1")
        if not 0 < float(box_width) < 1:
            raise ValueError(f"box_width={box_width} must lie in (0, 1): a beat's interval as a "
                             "fraction of the window")
        for key, value in (("lambda_coord", lambda_coord), ("lambda_noobj", lambda_noobj)):
            if not float(value) >= 0:
                raise ValueError(f"loss.{key}={value} must be >= 0")
        self.num_classes, self.box_width = int(num_classes), float(box_width)
        self.num_cells, self.boxes_per_cell = int(num_cells), int(boxes_per_cell)
        self.lambda_coord, self.lambda_noobj = float(lambda_coord), float(lambda_noobj)

    # ------------------------------------------------------------------ targets
    @torch.no_grad()
    def targets(self, outputs: dict, batch: dict) -> dict:
        """The assignment, all [B, S, B_box] unless said: "responsible" (bool), the responsible
        predictors' targets "offset", "sqrt_width", "iou" (0 elsewhere); "class" [B, S, K] and
        "has_beat" [B, S] (bool); "dropped", the number of beats left without a predictor."""
        offset, sqrt_w = outputs["offset"].detach().float(), outputs["sqrt_width"].detach().float()
        n, cells, boxes = offset.shape
        device = offset.device
        pos, cls = batch["beat_pos"].to(device).float(), batch["beat_cls"].to(device).long()
        b_idx, m_idx = torch.nonzero(cls >= 0, as_tuple=True)                 # every real beat
        p, label = pos[b_idx, m_idx], cls[b_idx, m_idx]
        cell = (p * cells).floor().long().clamp(0, cells - 1)
        tx = p * cells - cell
        beat = torch.stack([p, torch.full_like(p, self.box_width)], -1)       # [N, 2]

        # IoU of every beat with each predictor of its cell [N, B_box]
        centre = (cell.unsqueeze(-1) + offset[b_idx, cell]) / cells
        iou = interval_iou(torch.stack([centre, sqrt_w[b_idx, cell] ** 2], -1), beat.unsqueeze(1))
        slots = (b_idx * cells + cell).unsqueeze(-1) * boxes + torch.arange(boxes, device=device)

        # greedy rounds: each unassigned beat asks for its best free predictor, a contested one
        # goes to the highest IoU (then the lowest beat index); B rounds fill every cell
        total, beats = n * cells * boxes, len(p)
        taken = torch.zeros(total, dtype=torch.bool, device=device)
        choice = torch.full((beats,), -1, dtype=torch.long, device=device)
        order = torch.arange(beats, device=device)
        for _ in range(boxes):
            wanted = iou.masked_fill(taken[slots], -1.0)
            best, j = wanted.max(-1)
            active = (choice < 0) & (best >= 0)
            slot = slots[order, j]
            top = torch.full((total,), -2.0, device=device).scatter_reduce(
                0, slot[active], best[active], "amax")
            contender = active & (best == top[slot])
            first = torch.full((total,), beats, dtype=torch.long, device=device).scatter_reduce(
                0, slot[contender], order[contender], "amin")
            win = contender & (first[slot] == order)
            choice[win] = j[win]
            taken[slot[win]] = True

        won = choice >= 0
        slot = slots[order[won], choice[won]]
        shape = (n, cells, boxes)
        out = {"responsible": taken.view(shape), "dropped": (~won).sum().float()}
        sqrt_w = torch.full_like(tx[won], math.sqrt(self.box_width))
        for key, value in (("offset", tx[won]), ("sqrt_width", sqrt_w), ("iou", iou[order[won], choice[won]])):
            out[key] = torch.zeros(total, device=device).index_put_((slot,), value).view(shape)
        onehot = torch.zeros(n * cells, self.num_classes, device=device)
        onehot.index_put_((b_idx * cells + cell, label), torch.ones_like(p), accumulate=True)
        count = onehot.sum(-1, keepdim=True)
        out["class"] = (onehot / count.clamp(min=1)).view(n, cells, self.num_classes)
        out["has_beat"] = (count.squeeze(-1) > 0).view(n, cells)
        return out

    # ------------------------------------------------------------------ the objective
    @fp32
    def terms(self, conf, offset, sqrt_width, class_prob, t: dict) -> dict:
        resp = t["responsible"].to(conf.dtype)
        n = conf.shape[0]
        coord = self.lambda_coord * (resp * ((offset - t["offset"]) ** 2
                                             + (sqrt_width - t["sqrt_width"]) ** 2)).sum() / n
        obj = (resp * (conf - t["iou"]) ** 2).sum() / n
        noobj = self.lambda_noobj * ((1 - resp) * conf ** 2).sum() / n
        cls = (t["has_beat"].unsqueeze(-1) * (class_prob - t["class"]) ** 2).sum() / n
        return {"loss": coord + obj + noobj + cls, "coord": coord, "obj": obj, "noobj": noobj, "cls": cls}

    def __call__(self, outputs: dict, batch: dict) -> dict:
        """{"loss", "coord", "obj", "noobj", "cls"} (batch means) and "dropped" (beats of the
        batch without a predictor, logged to see whether S x B is too coarse)."""
        conf = outputs["conf"]
        want = (self.num_cells, self.boxes_per_cell)
        if tuple(conf.shape[1:]) != want or outputs["class_prob"].shape[-1] != self.num_classes:
            raise ValueError(f"the loss expects {want[0]} cells x {want[1]} boxes and "
                             f"{self.num_classes} classes; the model gives {tuple(conf.shape[1:])} and "
                             f"{outputs['class_prob'].shape[-1]} (set model.num_cells / boxes_per_cell, "
                             "which loss.num_cells / boxes_per_cell follow)")
        t = self.targets(outputs, batch)
        out = self.terms(conf, outputs["offset"], outputs["sqrt_width"], outputs["class_prob"], t)
        out["dropped"] = t["dropped"]
        return out
