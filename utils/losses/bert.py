"""BERT's pretraining loss on series patches (Devlin et al., NAACL 2019): masked-patch
regression on the chosen positions plus next-segment prediction on the [CLS] state."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.mae import masked_patch_mse
from utils.losses.precision import fp32


@fp32
def next_segment_loss(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the IsNext (0) / NotNext (1) classifier, and its accuracy."""
    return F.cross_entropy(logits, label), (logits.argmax(-1) == label).float().mean()


class BERTLoss(nn.Module):
    """masked-patch MSE (chosen positions only) + nsp_weight x NSP cross-entropy; BERT sums
    the two (nsp_weight 1). ``norm_target``: each target patch normalised by its own mean and
    variance, as MAE's variant; off by default (BERT predicts the original token)."""

    def __init__(self, nsp_weight: float = 1.0, norm_target: bool = False):
        super().__init__()
        self.nsp_weight, self.norm_target = nsp_weight, norm_target

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        masked = masked_patch_mse(outputs["pred"], outputs["target"], outputs["chosen"],
                                  self.norm_target)
        nsp, accuracy = next_segment_loss(outputs["nsp_logits"], outputs["nsp_label"])
        return {"loss": masked + self.nsp_weight * nsp, "masked_patch": masked, "nsp": nsp,
                "nsp_accuracy": accuracy}
