"""wav2vec 2.0's objective (Baevski et al., NeurIPS 2020): contrastive loss over masked steps
with distractors from the same sequence, diversity loss and feature penalty."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses.precision import fp32


def sample_distractors(num_seqs: int, num_masked: int, num_negatives: int,
                       device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, M, K] indices into the M masked steps of the same sequence, drawn uniformly with
    replacement from the other masked steps (never the step itself)."""
    if num_masked < 2:
        raise ValueError("wav2vec 2.0 needs at least 2 masked steps per sequence to draw "
                         "distractors; raise model.mask_prob or use longer inputs")
    idx = torch.randint(0, num_masked - 1, (num_seqs, num_masked, num_negatives),
                        device=device, generator=generator)
    own = torch.arange(num_masked, device=device).view(1, -1, 1)
    return idx + (idx >= own).long()   # skip the positive's own index


@fp32
def wav2vec2_contrastive(c: torch.Tensor, q_pos: torch.Tensor, q_neg: torch.Tensor,
                         temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3: -log exp(sim(c_t, q_t)/kappa) / sum_{q~ in {q_t} u distractors} exp(sim(c_t, q~)/kappa)
    with cosine similarity. c, q_pos [N, D]; q_neg [N, K, D]. A distractor identical to the
    positive is not a negative (its logit is -inf, as fairseq). Returns (mean loss, accuracy)."""
    cands = torch.cat([q_pos.unsqueeze(1), q_neg], dim=1)                # N x (1+K) x D
    logits = F.cosine_similarity(c.unsqueeze(1).float(), cands.float(), dim=-1) / temperature
    same = (q_neg == q_pos.unsqueeze(1)).all(-1)
    logits[:, 1:] = logits[:, 1:].masked_fill(same, float("-inf"))
    target = torch.zeros(len(c), dtype=torch.long, device=c.device)
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(-1) == 0).float().mean()
    return loss, acc


class Wav2Vec2Loss(nn.Module):
    """L = L_m + alpha L_d (+ feature penalty): contrastive loss over masked steps with
    K distractors, diversity loss weight alpha = 0.1, L2 penalty on the feature encoder's
    output (weight 10 in the paper's fairseq recipe)."""

    def __init__(self, num_negatives: int = 100, temperature: float = 0.1,
                 diversity_weight: float = 0.1, feature_penalty: float = 10.0):
        super().__init__()
        self.num_negatives, self.temperature = num_negatives, temperature
        self.diversity_weight, self.feature_penalty = diversity_weight, feature_penalty

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        c, q, idx = outputs["c"], outputs["q"], outputs["mask_idx"]   # c, q [B, T, D]; idx [B, M]
        B, M = idx.shape
        gather = lambda t: torch.gather(t, 1, idx.unsqueeze(-1).expand(-1, -1, t.size(-1)))
        c_m, q_m = gather(c), gather(q)                                # B x M x D
        neg = sample_distractors(B, M, self.num_negatives, device=c.device)
        q_neg = torch.gather(q_m.unsqueeze(1).expand(-1, M, -1, -1), 2,
                             neg.unsqueeze(-1).expand(-1, -1, -1, q.size(-1)))   # B x M x K x D
        contrastive, acc = wav2vec2_contrastive(c_m.reshape(B * M, -1), q_m.reshape(B * M, -1),
                                                q_neg.reshape(B * M, self.num_negatives, -1),
                                                self.temperature)
        diversity = outputs["diversity_loss"]
        penalty = outputs["features_pen"]
        loss = contrastive + self.diversity_weight * diversity + self.feature_penalty * penalty
        return {"loss": loss, "contrastive": contrastive, "diversity": diversity,
                "feature_penalty": penalty, "accuracy": acc, "perplexity": outputs["perplexity"],
                "temperature": outputs["temperature"]}
