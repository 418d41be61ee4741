"""The semi-supervised hybrid (Cai et al. 2023, SLOTS): NT-Xent on every series, supervised
contrastive and cross-entropy on the labelled share."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import gather
from utils.losses.precision import fp32
from utils.losses.simclr import nt_xent


@fp32
def supervised_contrastive(z: torch.Tensor, y: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SupCon L_out (Khosla et al. 2020): for anchor i, -1/|P(i)| sum over its positives p
    (same label, p != i) of log softmax over all a != i of z_i . z_a / temperature; mean
    over anchors that have a positive (0 with a gradient path when none has)."""
    z = F.normalize(z.float(), dim=1)
    n = z.size(0)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.t() / temperature).masked_fill(self_mask, float("-inf"))
    logp = F.log_softmax(sim, dim=1)
    pos = (y.view(-1, 1) == y.view(1, -1)) & ~self_mask
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(logp.masked_fill(~pos, 0.0).sum(dim=1)[has] / n_pos[has])
    return per_anchor.mean()


class HybridLoss(nn.Module):
    """Semi-supervised end-to-end objective (Cai et al. 2023, SLOTS): NT-Xent over two views
    of every series + supervised contrastive over the views of the labelled series +
    cross-entropy of the classifier on the labelled series (label -1 = unlabelled)."""

    def __init__(self, temperature: float = 0.2, sup_temperature: float | None = None,
                 unsup_weight: float = 1.0, supcon_weight: float = 1.0, ce_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.sup_temperature = sup_temperature or temperature
        self.w = (unsup_weight, supcon_weight, ce_weight)

    def forward(self, outputs: dict, batch: dict) -> dict:
        # the contrastive terms see every process's batch; the classifier's term is per process
        z1, z2 = gather(outputs["z1"]), gather(outputs["z2"])
        unsup = nt_xent(z1, z2, self.temperature)
        y = outputs.get("y")
        zero = z1.sum() * 0.0
        supcon, ce = zero, zero
        if y is not None:
            y_global = gather(y)
            lab = y_global >= 0
            if bool(lab.any()):
                z_lab = torch.cat([z1[lab], z2[lab]])
                supcon = supervised_contrastive(z_lab, torch.cat([y_global[lab], y_global[lab]]),
                                                self.sup_temperature)
            # the classifier may score every view: labels repeat per view
            logits = outputs["logits"]
            y_all = y.repeat(logits.size(0) // y.size(0))
            lab_all = y_all >= 0
            if bool(lab_all.any()):
                ce = F.cross_entropy(logits[lab_all].float(), y_all[lab_all])
        total = self.w[0] * unsup + self.w[1] * supcon + self.w[2] * ce
        return {"loss": total, "unsup": unsup.detach(), "supcon": supcon.detach(), "ce": ce.detach()}
