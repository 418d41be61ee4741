"""Objectives of CPC, TF-C, COMET, MAE and wav2vec 2.0.

Each ``*Loss`` class is the callable the Exp builds from conf/loss/<name>.yaml:
``loss(outputs, batch) -> {"loss": Tensor, <part>: Tensor, ...}`` where ``outputs`` is what
the matching model in models/ssl/ returns in training mode. The functions below them are
the paper formulas on plain tensors, so tests can check them on hand-computed cases.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.losses_ts2vec import instance_contrastive_loss, temporal_contrastive_loss


# ---------------------------------------------------------------------------- CPC
def cpc_info_nce(pred: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CPC's InfoNCE (van den Oord et al. 2018, Eq. 4) with negatives from the batch.

    pred [B, T, K, D]: W_k c_t for k = 1..K; z [B, T, D]: encoded steps z_t.
    The score of a candidate z is f = z^T W_k c_t. For each k, each t with t + k < T and
    each sequence b the positive is z[b, t+k]; the candidates are every encoded step of
    every sequence of the batch (B T samples of the marginal p(z), the paper's proposal
    distribution), so the N - 1 = B T - 1 others are the negatives. Returns (mean loss over
    k, t, b; accuracy of picking the positive)."""
    B, T, K, D = pred.shape
    cands = z.reshape(B * T, D)
    losses, hits, count = [], 0.0, 0
    for k in range(1, K + 1):
        if T - k <= 0:
            break
        p = pred[:, : T - k, k - 1].reshape(-1, D)           # rows (b, t), t < T - k
        logits = p @ cands.t()                                # (B (T-k)) x (B T)
        b = torch.arange(B, device=z.device).view(-1, 1)
        t = torch.arange(T - k, device=z.device).view(1, -1)
        target = (b * T + t + k).reshape(-1)                  # index of z[b, t+k]
        losses.append(F.cross_entropy(logits, target, reduction="sum"))
        hits += float((logits.argmax(-1) == target).sum())
        count += logits.size(0)
    if not losses:
        raise ValueError(f"CPC needs at least 2 encoded steps to predict the future, got T={T}; "
                         "use longer windows or fewer/lower strides in model.strides")
    return torch.stack(losses).sum() / count, z.new_tensor(hits / count)


class CPCLoss(nn.Module):
    def __init__(self):   # explicit: the builder passes data sizes only to named arguments
        super().__init__()

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        loss, acc = cpc_info_nce(outputs["pred"], outputs["z"])
        return {"loss": loss, "accuracy": acc}


# ---------------------------------------------------------------------------- TF-C
def tfc_consistency(s_tf: torch.Tensor, s_pairs: list[torch.Tensor], delta: float = 1.0,
                    hinge: bool = True) -> torch.Tensor:
    """TF-C's time-frequency consistency term (Zhang et al. 2022, Eq. 3), triplet style:
    L_C = sum over pairs of (S^TF - S^pair + delta), where S^TF is the contrastive distance
    between z^T and z^F of the same (unaugmented) input and S^pair those of the three
    pairs involving an augmented view: (z^T, z~^F), (z~^T, z^F), (z~^T, z~^F).

    ``hinge`` (default) takes max(0, .) of each term, as a triplet loss with margin delta:
    once S^pair exceeds S^TF by delta the term stops pushing. Without it (the equation as
    printed, the official code's first version) the loss is minimised by driving S^pair up
    without bound, i.e. by pushing augmented views apart, against L_T and L_F."""
    terms = [s_tf - s + delta for s in s_pairs]
    if hinge:
        terms = [F.relu(t) for t in terms]
    return sum(terms)


class TFCLoss(nn.Module):
    """L = lam (L_T + L_F) + (1 - lam) L_C (TF-C pretraining, as the official code's
    lam = 0.2, delta = 1, NT-Xent with cosine similarity at temperature 0.2)."""

    def __init__(self, temperature: float = 0.2, lam: float = 0.2, delta: float = 1.0,
                 hinge: bool = True):
        super().__init__()
        self.temperature, self.lam, self.delta, self.hinge = temperature, lam, delta, hinge

    def _d(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        from utils.contrastive_losses import nt_xent  # part A's NT-Xent (one implementation)
        return nt_xent(a, b, temperature=self.temperature)

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        o = outputs
        loss_t = self._d(o["h_t"], o["h_t_aug"])
        loss_f = self._d(o["h_f"], o["h_f_aug"])
        s_tf = self._d(o["z_t"], o["z_f"])
        pairs = [self._d(o["z_t"], o["z_f_aug"]), self._d(o["z_t_aug"], o["z_f"]),
                 self._d(o["z_t_aug"], o["z_f_aug"])]
        loss_c = tfc_consistency(s_tf, pairs, self.delta, self.hinge)
        loss = self.lam * (loss_t + loss_f) + (1 - self.lam) * loss_c
        return {"loss": loss, "time": loss_t, "freq": loss_f, "consistency": loss_c, "tf": s_tf}


# ---------------------------------------------------------------------------- COMET
def same_id_pairs(ids: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: True where i != j and ids[i] == ids[j] (COMET's positives)."""
    same = ids.view(-1, 1) == ids.view(1, -1)
    return same & ~torch.eye(len(ids), dtype=torch.bool, device=ids.device)


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
            z1, z2 = outputs[f"{level}_z1"], outputs[f"{level}_z2"]
            if is_id_level:
                parts[level] = id_contrastive_loss(z1, z2, outputs[f"{level}_id"], self.temperature)
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


# ---------------------------------------------------------------------------- MAE
def masked_patch_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                     norm_target: bool = True) -> torch.Tensor:
    """MAE loss (He et al. 2022): mean squared error per patch, averaged over the masked
    patches only. pred/target [B, N, P]; mask [B, N] (1 = masked). ``norm_target``:
    each target patch normalised by its own mean and variance (the paper's better variant)."""
    if norm_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, unbiased=False)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


class MAELoss(nn.Module):
    def __init__(self, norm_target: bool = True):
        super().__init__()
        self.norm_target = norm_target

    def forward(self, outputs: dict, batch: dict | None = None) -> dict:
        loss = masked_patch_mse(outputs["pred"], outputs["target"], outputs["mask"], self.norm_target)
        return {"loss": loss}


# ---------------------------------------------------------------------------- wav2vec 2.0
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
