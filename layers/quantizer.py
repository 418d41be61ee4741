"""Gumbel-softmax product quantiser of wav2vec 2.0 (Baevski et al., NeurIPS 2020, Sec. 2).

A feature vector z is mapped to logits l in R^{G x V} (G codebooks, V entries each). In
training one entry per group is chosen by a straight-through Gumbel softmax with
temperature tau (hard one-hot forward, soft gradients backward); in evaluation the argmax
is taken. The chosen entries e_g in R^{d/G} are concatenated into q in R^d.

tau is annealed from ``max_temp`` to ``min_temp`` by a factor ``temp_decay`` per update
(2 -> 0.5, 0.999995 in the paper); call ``set_step(step)`` after each optimizer step.

The diversity loss (Eq. 4) pushes the softmax averaged over a batch, p_bar_g, towards
uniform use of the V entries of each group:

    L_d = (G V - sum_g exp(H(p_bar_g))) / (G V)

``perplexity`` = sum_g exp(H(p_bar_g)) lies in [G, G V], so L_d lies in [0, 1 - 1/V].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GumbelVectorQuantizer(nn.Module):
    def __init__(self, in_dim: int, code_dim: int, num_groups: int = 2, num_vars: int = 320,
                 max_temp: float = 2.0, min_temp: float = 0.5, temp_decay: float = 0.999995):
        super().__init__()
        if code_dim % num_groups:
            raise ValueError(f"code_dim={code_dim} must be divisible by num_groups={num_groups} "
                             "(each group's entries have code_dim / num_groups dimensions)")
        self.num_groups, self.num_vars = num_groups, num_vars
        self.max_temp, self.min_temp, self.temp_decay = max_temp, min_temp, temp_decay
        self.code_dim = code_dim
        self.weight_proj = nn.Linear(in_dim, num_groups * num_vars)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        # G*V codebook entries of d/G dimensions
        self.codebook = nn.Parameter(torch.empty(num_groups * num_vars, code_dim // num_groups).uniform_())
        self.register_buffer("temperature", torch.tensor(float(max_temp)))
        # the buffer's value on the host, so a training step never waits to read it
        self.tau = float(self.temperature)
        self.register_load_state_dict_post_hook(_refresh_tau)

    def set_step(self, step: int) -> None:
        value = torch.tensor(max(self.max_temp * self.temp_decay ** step, self.min_temp))
        self.temperature.copy_(value)
        self.tau = float(value)

    def forward(self, z: torch.Tensor, valid: torch.Tensor | None = None) -> dict:
        """z [B, T, in_dim] -> q [B, T, code_dim] plus the diversity statistics.
        ``valid`` [B, T] bool: steps that count for the batch-averaged softmax."""
        B, T, _ = z.shape
        G, V = self.num_groups, self.num_vars
        logits = self.weight_proj(z).view(B * T, G, V).float()
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=self.tau, hard=True, dim=-1)
        else:
            onehot = F.one_hot(logits.argmax(-1), V).to(logits.dtype)
        # product quantisation: one entry per group, concatenated
        codes = onehot.view(B * T, G, V, 1) * self.codebook.view(1, G, V, -1)
        q = codes.sum(dim=2).reshape(B, T, self.code_dim).to(z.dtype)

        probs = logits.softmax(dim=-1)                                   # (BT, G, V)
        if valid is not None:
            keep = valid.reshape(-1)
            probs, hard = probs[keep], onehot[keep]
        else:
            hard = onehot
        avg = probs.mean(dim=0)                                          # (G, V)
        perplexity = torch.exp(-(avg * torch.log(avg + 1e-7)).sum(-1)).sum()
        hard_avg = hard.detach().mean(dim=0)
        code_perplexity = torch.exp(-(hard_avg * torch.log(hard_avg + 1e-7)).sum(-1)).sum()
        diversity = (G * V - perplexity) / (G * V)
        return {"q": q, "indices": onehot.argmax(-1).view(B, T, G), "perplexity": perplexity,
                "code_perplexity": code_perplexity, "diversity_loss": diversity}


def _refresh_tau(module, incompatible_keys) -> None:
    module.tau = float(module.temperature)
