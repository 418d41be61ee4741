"""YOLO v1 (Redmon, Divvala, Girshick & Farhadi, "You Only Look Once: Unified, Real-Time Object
Detection", CVPR 2016) in 1-D: the beats of a continuous ECG window as intervals on its time axis.

The paper divides the image into an S x S grid; each cell predicts B boxes, each with a
confidence (Pr(object) x IoU with the truth) and (x, y, sqrt w, sqrt h), x and y relative to the
cell's bounds, and one set of C class probabilities for the cell, whatever B is. Its network is a
convolutional backbone (24 layers, leaky ReLU 0.1, max pooling) and two fully connected layers
over the whole flattened final map (4096 units, dropout 0.5 after the first), the second giving
the S x S x (5B + C) tensor. At test time a box's class-specific score is confidence x class
probability, followed by non-maximum suppression.

What is 1-D specific:
- the window of W steps is divided into S equal cells (``num_cells``); each of the B predictors
  (``boxes_per_cell``) gives (confidence, offset of the centre within the cell, sqrt of the
  width as a fraction of the window);
- the backbone is a small Conv1d stack trained from scratch (the paper's is ImageNet
  pretrained): a 7-tap stem, then per width of ``channels`` a 3-tap conv, BatchNorm, leaky
  ReLU 0.1 and a stride-2 max pooling (the paper's downsampling), overall stride
  2**len(channels); its map, of any length, is average-pooled to exactly S cells (adaptive
  pooling), so W need not be a multiple of S;
- the head is the paper's by default (``head="fc"``): one FC layer over the flattened pooled
  map (channels[-1] x S inputs), leaky ReLU, dropout, and an FC layer giving every cell's
  outputs, so each cell sees the whole window. ``head="conv"`` instead shares a per-cell head
  (a 3-tap conv over neighbouring cells, leaky ReLU, dropout, 1x1 conv) across the cells:
  translation-equivariant and independent of S in size, at the price of a context limited to
  the backbone's receptive field;
- outputs are bounded instead of the paper's linear ones: sigmoid on the confidence and offset
  (both in [0, 1] by definition), sigmoid on sqrt(width) (a width of at most the window), softmax
  on the class probabilities. The loss stays the paper's sum-squared error on these values
  (utils/losses/yolo.py). The sqrt-width bias starts at sqrt(box_width), the target beats'
  width, so the first predicted intervals have the size of a beat and the IoU that picks the
  responsible predictor means something from the first step.

``detections`` applies the paper's test-time rule, then greedy 1-D NMS per window across classes
(one beat per place), suppressed candidates scored 0 so that every window keeps S x B of them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.base import BaseModel
from utils.detection.intervals import nms_1d

HEADS = ("fc", "conv")


def conv_block(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(out_ch), nn.LeakyReLU(0.1)]


class YOLO1d(BaseModel):
    """forward(x [B, W, C]) -> {"conf", "offset", "sqrt_width"} [B, S, B_box] and
    "class_prob" [B, S, K]; detections(outputs) -> score, label, centre, width [B, S * B_box]."""

    def __init__(self, enc_in: int, seq_len: int, num_classes: int, box_width: float,
                 num_cells: int = 64, boxes_per_cell: int = 2,
                 channels: Sequence[int] = (32, 64, 128, 256), hidden: int = 256,
                 dropout: float = 0.5, nms_iou: float = 0.5, head: str = "fc"):
        super().__init__()
        channels = [int(c) for c in channels]
        for key, value in (("enc_in", enc_in), ("seq_len", seq_len), ("num_classes", num_classes),
                           ("num_cells", num_cells), ("boxes_per_cell", boxes_per_cell),
                           ("hidden", hidden)):
            if int(value) < 1:
                raise ValueError(f"model.{key}={value} must be at least 1")
        if not channels or min(channels) < 1:
            raise ValueError(f"model.channels={channels} must list at least one positive width")
        if not 0 < float(box_width) < 1:
            raise ValueError(f"box_width={box_width} must lie in (0, 1): a beat's interval as a "
                             "fraction of the window")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.dropout={dropout} must lie in [0, 1)")
        if not 0 < nms_iou <= 1:
            raise ValueError(f"model.nms_iou={nms_iou} must lie in (0, 1]")
        if head not in HEADS:
            raise ValueError(f"model.head={head!r} is not known; choose fc (the paper's) or conv")
        self.enc_in, self.seq_len, self.num_classes = int(enc_in), int(seq_len), int(num_classes)
        self.num_cells, self.boxes_per_cell = int(num_cells), int(boxes_per_cell)
        self.box_width, self.nms_iou, self.head_kind = float(box_width), float(nms_iou), head
        self.per_cell = 3 * self.boxes_per_cell + self.num_classes

        layers = conv_block(self.enc_in, channels[0], 7)
        for a, b in zip([channels[0], *channels[:-1]], channels):
            layers += [*conv_block(a, b, 3), nn.MaxPool1d(2, ceil_mode=True)]   # odd lengths keep their end
        self.backbone = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(self.num_cells)
        if head == "fc":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * self.num_cells, hidden),
                                      nn.LeakyReLU(0.1), nn.Dropout(dropout),
                                      nn.Linear(hidden, self.num_cells * self.per_cell))
        else:
            self.head = nn.Sequential(nn.Conv1d(channels[-1], hidden, 3, padding=1), nn.LeakyReLU(0.1),
                                      nn.Dropout(dropout), nn.Conv1d(hidden, self.per_cell, 1))
        with torch.no_grad():        # predicted widths start at the beats' width
            bias = self.head[-1].bias.view(-1, self.per_cell)         # [S or 1, per_cell]
            s = math.sqrt(self.box_width)
            bias[:, 2:3 * self.boxes_per_cell:3] = math.log(s / (1 - s))

    def forward(self, x: torch.Tensor) -> dict:
        if x.dim() != 3 or x.shape[-1] != self.enc_in:
            raise ValueError(f"YOLO1d takes series [batch, time, {self.enc_in}]; got shape {tuple(x.shape)}")
        h = self.pool(self.backbone(x.transpose(1, 2)))                       # [B, C', S]
        out = self.head(h)
        if self.head_kind == "fc":
            out = out.view(len(x), self.num_cells, self.per_cell)
        else:
            out = out.transpose(1, 2)
        boxes = out[..., :3 * self.boxes_per_cell].unflatten(-1, (self.boxes_per_cell, 3))
        conf, offset, sqrt_width = boxes.sigmoid().unbind(-1)
        return {"conf": conf, "offset": offset, "sqrt_width": sqrt_width,
                "class_prob": out[..., 3 * self.boxes_per_cell:].softmax(-1)}

    @torch.no_grad()
    def detections(self, outputs: dict) -> dict:
        """score, label (int64), centre, width [B, S * B_box], cell-major; the paper's
        class-specific confidence conf x max class probability, NMS-suppressed ones set to 0."""
        conf, prob = outputs["conf"].float(), outputs["class_prob"].float()
        n, cells = conf.shape[:2]
        score, label = (conf.unsqueeze(-1) * prob.unsqueeze(2)).max(-1)          # [B, S, B_box]
        cell = torch.arange(cells, dtype=conf.dtype, device=conf.device).view(1, -1, 1)
        centre = ((cell + outputs["offset"].float()) / cells).reshape(n, -1)
        width = (outputs["sqrt_width"].float() ** 2).reshape(n, -1)
        score, label = score.reshape(n, -1), label.reshape(n, -1)
        # greedy NMS is sequential within a window: on the host, where its steps cost no device sync
        intervals, host_score = torch.stack([centre, width], -1).cpu(), score.cpu()
        kept = torch.zeros_like(host_score, dtype=torch.bool)
        for b in range(n):
            kept[b, nms_1d(intervals[b], host_score[b], self.nms_iou)] = True
        return {"score": score * kept.to(score.device), "label": label.long(), "centre": centre,
                "width": width}
