"""COMET's four-level contrastive objective (Wang et al., NeurIPS 2023): patient, trial,
sample and observation level."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import gather
from utils.losses.precision import fp32
from utils.losses.ts2vec import instance_contrastive_loss, temporal_contrastive_loss


def same_id_pairs(ids: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: True where i != j and ids[i] == ids[j] (COMET's positives)."""
    same = ids.view(-1, 1) == ids.view(1, -1)
    return same & ~torch.eye(len(ids), dtype=torch.bool, device=ids.device)


@fp32
def id_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, ids: torch.Tensor,
                        temperature: float = 0.1) -> torch.Tensor:
    """COMET's patient- and trial-level loss (Wang et al. 2023, Eqs. 3-4, official code).

    z1, z2 [B, ...]: two views' representations, flattened per sample; s_ij = cos(z1_i,
    z2_j) / temperature. Positives are the pairs (i, j), i != j, with the same id. Upper
    pairs (i < j) are scored against row i (-log e^{s_ij} / sum_k e^{s_ik}); lower pairs
    (i > j) against column j (-log e^{s_ij} / sum_k e^{s_kj}); the loss is the mean of the two
    averages (0 when the batch holds no pair with a shared id)."""
    a = F.normalize(z1.reshape(z1.size(0), -1), dim=-1)
    b = F.normalize(z2.reshape(z2.size(0), -1), dim=-1)
    s = a @ b.t() / temperature
    pos = same_id_pairs(ids)
    upper, lower = torch.triu(pos, 1), torch.tril(pos, -1)
    terms = []
    if upper.any():
        terms.append(-F.log_softmax(s, dim=1)[upper].mean())
    if lower.any():
        terms.append(-F.log_softmax(s, dim=0)[lower].mean())
    if not terms:
        return s.sum() * 0.0
    return sum(terms) / len(terms)


def over_scales(fn, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """COMET's hierarchical application of a [B, T, D] loss: mean of fn over max-pooled
    time scales (kernel 2) while T > 1, as the official ``contrastive_loss``."""
    total, depth = z1.new_tensor(0.0), 0
    while z1.size(1) > 1:
        total = total + fn(z1, z2)
        depth += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if depth == 0:   # a single step: apply once
        return fn(z1, z2)
    return total / depth


COMET_LEVELS = ("patient", "trial", "sample", "observation")


class COMETLoss(nn.Module):
    """Weighted sum of the four levels. ``weights`` = [patient, trial, sample, observation]
    (0.25 each: the official default; the PTB config uses 0.1, 0.7, 0.1, 0.1).
    sample level = instance contrast, observation level = temporal contrast (TS2Vec
    formulation), both over max-pooled scales; patient and trial level = id contrast.

    A level the model left out of ``outputs`` (no ``<level>_z1``, or for patient/trial no
    ``<level>_id``: the data has no such ids, see models/ssl/comet.py) is skipped like a level
    of weight 0 (the official code's factor 0): its weight is dropped, the others are kept as
    they are, and it is absent from the returned parts."""

    def __init__(self, weights=(0.25, 0.25, 0.25, 0.25), temperature: float = 0.1):
        super().__init__()
        if len(weights) != 4:
            raise ValueError(f"COMET needs 4 level weights [patient, trial, sample, observation], got {list(weights)}")
        self.weights = dict(zip(COMET_LEVELS, (float(w) for w in weights)))
        self.temperature = temperature

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        parts = {}
        for level, w in self.weights.items():
            if w == 0 or f"{level}_z1" not in outputs:
                continue
            is_id_level = level in ("patient", "trial")
            if is_id_level and f"{level}_id" not in outputs:
                continue
            # every process's batch: positives and negatives across ranks
            z1, z2 = gather(outputs[f"{level}_z1"]), gather(outputs[f"{level}_z2"])
            if is_id_level:
                parts[level] = id_contrastive_loss(z1, z2, gather(outputs[f"{level}_id"]),
                                                   self.temperature)
            elif level == "sample":
                parts[level] = over_scales(instance_contrastive_loss, z1, z2)
            else:
                parts[level] = over_scales(temporal_contrastive_loss, z1, z2)
        if not parts:
            raise ValueError("COMETLoss: no level with a non-zero weight in loss.weights "
                             f"{list(self.weights.values())} is present in the model's outputs "
                             f"{sorted(outputs)}")
        loss = sum(self.weights[k] * v for k, v in parts.items())
        return {"loss": loss, **parts}
