"""Supervised objectives. A loss is ``loss(outputs, batch) -> Tensor``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropy(nn.Module):
    def __init__(self, label_smoothing: float = 0.0, class_weights=None, class_counts=None,
                 logit_adjustment: float = 0.0):
        """class_weights: None, "balanced" (inverse frequency of the training split's
        ``class_counts``, normalised to mean 1) or an explicit list.

        logit_adjustment: tau of Menon et al. 2021's logit-adjusted loss, the cross-entropy of
        logits + tau * log(training class prior). The model learns logits with the prior taken
        out, so their plain argmax (at test time, no adjustment) is the balanced-error rule
        for tau = 1; 0 = the plain loss."""
        super().__init__()
        self.label_smoothing = label_smoothing
        weight = log_prior = None
        counts = _train_counts(class_counts)
        if class_weights == "balanced":
            if counts is None:
                _need_counts("loss.class_weights=balanced")
            weight = torch.tensor(balanced_class_weights(counts), dtype=torch.float32)
        elif class_weights is not None:
            weight = torch.tensor(list(class_weights), dtype=torch.float32)
        if logit_adjustment:
            if counts is None:
                _need_counts("loss.logit_adjustment")
            # a class absent from training gets the smallest prior seen, not log(0)
            prior = np.maximum(counts, counts[counts > 0].min()) / counts.sum()
            log_prior = torch.tensor(float(logit_adjustment) * np.log(prior), dtype=torch.float32)
        self.register_buffer("weight", weight)
        self.register_buffer("log_prior", log_prior)

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        logits = outputs["logits"].float()
        if self.log_prior is not None:
            logits = logits + self.log_prior
        return F.cross_entropy(logits, batch["y"], weight=self.weight,
                               label_smoothing=self.label_smoothing)


def balanced_class_weights(counts) -> np.ndarray:
    """Inverse class frequency, normalised to mean 1 over the classes present (an absent
    class weighs 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0)
    return w / w[w > 0].mean()


def _train_counts(class_counts) -> np.ndarray | None:
    """The training split's per-class counts from meta["class_counts"] ({split: {class: n}},
    {class: n} or a list)."""
    if isinstance(class_counts, dict):
        class_counts = class_counts.get("train", class_counts)
        class_counts = list(class_counts.values()) if isinstance(class_counts, dict) else class_counts
    return None if class_counts is None else np.asarray(class_counts, dtype=np.float64)


def _need_counts(option: str):
    raise ValueError(f"{option} needs the training class counts; this data family does not "
                     "provide meta['class_counts']")
