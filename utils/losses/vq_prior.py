"""The objective of a VQ tokenizer trained with an autoregressive prior over its codes
(models/vq_prior.py): VQ-VAE's loss (van den Oord et al., NeurIPS 2017) without its codebook
term - the codebook follows moving averages, or is a fixed grid (FSQ) -

    recon_mse + beta * commitment,   beta = 0.25 (the paper's),

plus the prior's cross-entropy of each next code. The parts share no parameters (the prior reads
the codes as integers), so their sum trains both stages at once and is one scale on which
validation epochs compare. The parts, the codebook's perplexity and the share of codes a batch
used are returned beside the loss, for the training log."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.losses.precision import fp32


@fp32
def vq_prior_terms(x_hat: torch.Tensor, x: torch.Tensor, logits: torch.Tensor,
                   codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction MSE, mean cross-entropy of the codes under the prior's logits [B, N, K])."""
    recon = F.mse_loss(x_hat, x)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))
    return recon, ce


class VQPriorLoss:
    def __init__(self, beta: float = 0.25):
        if not beta >= 0:
            raise ValueError(f"loss.beta={beta} must be >= 0 (the commitment weight; VQ-VAE: 0.25)")
        self.beta = float(beta)

    def __call__(self, outputs: dict, batch: dict | None = None) -> dict:
        recon, ce = vq_prior_terms(outputs["x_hat"], outputs["x"], outputs["logits"], outputs["indices"])
        commitment = outputs["commitment"].float()
        return {"loss": recon + self.beta * commitment + ce, "recon_mse": recon,
                "commitment": commitment, "prior_ce": ce, "perplexity": outputs["perplexity"],
                "codebook_usage": outputs["usage"]}
