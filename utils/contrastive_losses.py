"""Objectives of the siamese / contrastive methods (models/ssl/).

Functional forms take tensors; the ``*Loss`` modules are the ``loss(outputs, batch)``
callables built from conf/loss/*.yaml and read the keys their model's forward returns.
State the losses depend on (MoCo's queue, DINO's centre, the memory bank, the NCE
normaliser) lives in the model as buffers, so checkpoints hold it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- functional


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views: for each of the 2N projections the other view of
    its series is the positive and the remaining 2N - 2 are negatives; cosine similarity /
    temperature; mean over the 2N anchors."""
    n = z1.size(0)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                   temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE: query q [N, D] against its key k [N, D] (positive, no gradient) and
    the K queued keys [K, D] (negatives); vectors are L2-normalised."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1).detach()
    queue = F.normalize(queue.float(), dim=1).detach()
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.t()
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL: || p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z), mean over the batch; z is a target
    (no gradient)."""
    p = F.normalize(p.float(), dim=-1)
    z = F.normalize(z.float(), dim=-1).detach()
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)), mean over the batch."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> torch.Tensor:
    """DINO: student [V, B, K] (global views first, then local), teacher [G, B, K] on the G
    global views. Teacher outputs are centred and sharpened, softmax((t - c) / teacher_temp),
    and give targets (no gradient) for every student view but the same one; the loss is the
    cross-entropy averaged over those (teacher view, student view) pairs."""
    s_logp = F.log_softmax(student.float() / student_temp, dim=-1)
    t_prob = F.softmax((teacher.float() - center.float()) / teacher_temp, dim=-1).detach()
    n_teacher, n_student = t_prob.size(0), s_logp.size(0)
    pairs = ~torch.eye(n_teacher, n_student, dtype=torch.bool, device=student.device)
    if not bool(pairs.any()):
        raise ValueError("dino_loss needs at least two views (no pair of different views)")
    # every (teacher view, student view) cross-entropy at once: indexing the [V, B, K] tensor
    # pair by pair back-propagates one zero-filled [V, B, K] gradient per pair (18 of them)
    cross = -torch.einsum("gbk,vbk->gv", t_prob, s_logp) / s_logp.size(1)
    return cross[pairs].mean()


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    """DINO's centre: c <- m c + (1 - m) mean of the teacher outputs [G, B, K] of the batch."""
    batch_center = teacher.float().reshape(-1, teacher.size(-1)).mean(dim=0, keepdim=True)
    return center * momentum + batch_center * (1 - momentum)


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


# ----------------------------------------------------------------------------- loss modules


class NTXentLoss(nn.Module):
    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return nt_xent(outputs["z1"], outputs["z2"], self.temperature)


class MoCoLoss(nn.Module):
    def __init__(self, temperature: float = 0.2):
        super().__init__()
        self.temperature = temperature

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return info_nce_queue(outputs["q"], outputs["k"], outputs["queue"], self.temperature)


class BYOLLoss(nn.Module):
    """Symmetrised: L(p1, z2') + L(p2, z1') as in the paper (each term in [0, 4])."""

    def __init__(self):   # explicit: the Exp passes data sizes only to arguments it sees
        super().__init__()

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return normalized_mse(outputs["p1"], outputs["t2"]) + normalized_mse(outputs["p2"], outputs["t1"])


class SimSiamLoss(nn.Module):
    """L = D(p1, z2) / 2 + D(p2, z1) / 2, in [-1, 1]."""

    def __init__(self):   # explicit: the Exp passes data sizes only to arguments it sees
        super().__init__()

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        return 0.5 * negative_cosine(outputs["p1"], outputs["z2"]) + \
            0.5 * negative_cosine(outputs["p2"], outputs["z1"])


class DINOLoss(nn.Module):
    """Returns the loss with two diagnostics of the DINO paper (Sec. 5.3): the entropy of the
    teacher's targets and the student-teacher KL (loss = entropy + KL). Early in training the
    loss rises while centring flattens the targets; the KL is what the student lowers;
    collapse shows as entropy -> log K with KL -> 0."""

    def __init__(self, student_temp: float = 0.1, teacher_temp: float = 0.04):
        super().__init__()
        self.student_temp, self.teacher_temp = student_temp, teacher_temp

    def forward(self, outputs: dict, batch: dict) -> dict:
        loss = dino_loss(outputs["student"], outputs["teacher"], outputs["center"],
                         self.student_temp, self.teacher_temp)
        with torch.no_grad():
            t = F.softmax((outputs["teacher"].float() - outputs["center"].float()) / self.teacher_temp, -1)
            entropy = -(t * torch.log(t.clamp_min(1e-12))).sum(-1).mean()
        return {"loss": loss, "teacher_entropy": entropy, "kl": loss.detach() - entropy}


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
        z1, z2 = outputs["z1"], outputs["z2"]
        unsup = nt_xent(z1, z2, self.temperature)
        y = outputs.get("y")
        zero = z1.sum() * 0.0
        supcon, ce = zero, zero
        if y is not None:
            lab = y >= 0
            if bool(lab.any()):
                z_lab = torch.cat([z1[lab], z2[lab]])
                supcon = supervised_contrastive(z_lab, torch.cat([y[lab], y[lab]]), self.sup_temperature)
                logits = outputs["logits"]
                # the classifier may score every view: labels repeat per view
                y_all = y.repeat(logits.size(0) // y.size(0))
                lab_all = y_all >= 0
                ce = F.cross_entropy(logits[lab_all].float(), y_all[lab_all])
        total = self.w[0] * unsup + self.w[1] * supcon + self.w[2] * ce
        return {"loss": total, "unsup": unsup.detach(), "supcon": supcon.detach(), "ce": ce.detach()}
