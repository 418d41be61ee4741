"""Supervised objectives. A loss is ``loss(outputs, batch) -> Tensor``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropy(nn.Module):
    def __init__(self, label_smoothing: float = 0.0, class_weights=None, class_counts=None):
        """class_weights: None, "balanced" (inverse frequency of the training split's
        ``class_counts``, normalised to mean 1) or an explicit list."""
        super().__init__()
        self.label_smoothing = label_smoothing
        weight = None
        if isinstance(class_counts, dict):  # {split: {class: n}} or {class: n}
            class_counts = class_counts.get("train", class_counts)
            class_counts = list(class_counts.values()) if isinstance(class_counts, dict) else class_counts
        if class_weights == "balanced":
            if class_counts is None:
                raise ValueError("loss.class_weights=balanced needs the training class counts; "
                                 "this data family does not provide meta['class_counts']")
            counts = np.asarray(class_counts, dtype=np.float64)
            w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0)
            weight = torch.tensor(w / w[w > 0].mean(), dtype=torch.float32)
        elif class_weights is not None:
            weight = torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("weight", weight)

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return F.cross_entropy(outputs["logits"].float(), batch["y"], weight=self.weight,
                               label_smoothing=self.label_smoothing)
