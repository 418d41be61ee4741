"""DINO's self-distillation cross-entropy (Caron et al., ICCV 2021) and its teacher centre.
The centre lives in the model as a buffer, so checkpoints hold it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import all_reduce_mean
from utils.losses.precision import fp32


@fp32
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
    """DINO's centre: c <- m c + (1 - m) mean of the teacher outputs [G, B, K] of the batch
    (of every process's batch: the mean of the ranks' equal-sized batch means)."""
    batch_center = all_reduce_mean(teacher.float().reshape(-1, teacher.size(-1)).mean(dim=0, keepdim=True))
    return center * momentum + batch_center * (1 - momentum)


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
