"""Instance discrimination's NCE against a memory bank (Wu et al., CVPR 2018), or the
exact non-parametric softmax. The bank and the NCE normaliser live in the model."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


@fp32
def nce_loss(pos_logit: torch.Tensor, noise_logits: torch.Tensor, log_z: torch.Tensor | float,
             n_data: int) -> torch.Tensor:
    """Instance discrimination's NCE approximation (Wu et al. 2018, Eq. 6-8). With
    P(i|f) = exp(v_i . f / tau) / Z and the uniform noise P_n = 1 / n_data at m noise
    samples per positive, h(i, f) = P(i|f) / (P(i|f) + m P_n); the loss is
    -log h(positive) - sum over noise samples of log(1 - h(noise)), mean over the batch.
    pos_logit [B] and noise_logits [B, m] are v . f / tau."""
    m = noise_logits.size(1)
    log_mpn = torch.log(torch.tensor(m / float(n_data), device=pos_logit.device))
    log_p_pos = pos_logit.float() - log_z
    log_p_noise = noise_logits.float() - log_z
    # log h = log P - log(P + m Pn); log(1 - h) = log(m Pn) - log(P + m Pn)
    log_h_pos = log_p_pos - torch.logaddexp(log_p_pos, log_mpn.expand_as(log_p_pos))
    log_1mh = log_mpn - torch.logaddexp(log_p_noise, log_mpn.expand_as(log_p_noise))
    return -(log_h_pos + log_1mh.sum(dim=1)).mean()


class InstDiscLoss(nn.Module):
    """NCE when the model sampled noise (keys pos_logit, noise_logits, log_z, n_data), else
    the full non-parametric softmax (keys logits [B, n], target [B])."""

    def __init__(self):   # explicit: the Exp passes data sizes only to arguments it sees
        super().__init__()

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        if "noise_logits" in outputs:
            return nce_loss(outputs["pos_logit"], outputs["noise_logits"], outputs["log_z"],
                            int(outputs["n_data"]))
        return F.cross_entropy(outputs["logits"].float(), outputs["target"])
