"""Vector-quantised bottlenecks for a tokenizer of series (models/vq_prior.py): continuous
vectors z [..., code_dim] become integer codes and their code vectors.

``EMAVectorQuantizer`` (van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation
Learning", NeurIPS 2017). Each z is replaced by its nearest codebook entry e_k,
k = argmin_i ||z - e_i||^2; the decoder's gradient is copied straight through,
q = z + sg(e_k - z), and the commitment loss ||z - sg(e_k)||^2 keeps the encoder near its codes
(here the mean over elements, the scale of a reconstruction MSE). The codebook is not trained by
gradients but by exponential moving averages (the paper's Appendix A.1): with n_i the number of
vectors of the batch assigned to code i and s_i their sum,

    N_i <- decay N_i + (1 - decay) n_i,     m_i <- decay m_i + (1 - decay) s_i,
    e_i  = m_i / N~_i,   N~_i = (N_i + eps) / (sum_j N_j + K eps) * sum_j N_j   (Laplace smoothing)

with the paper's decay 0.99. It updates in training mode only and never while ``frozen``; the
codebook and its averages are buffers, so they checkpoint. Changed from the paper, and why:
N starts at 1 and m at the initial codes (as if each code had been assigned itself once), so a
code no batch uses keeps its vector instead of being divided by a count near zero; and with
``data_init`` the first training batch sets the codes to randomly chosen encoder outputs (a
simpler form of SoundStream's k-means initialisation, Zeghidour et al. 2021): codes drawn at
random, far from the encoder's outputs, would mostly never be chosen. Under torchrun the counts
and sums are averaged over processes, so every process takes the same update.

``FiniteScalarQuantizer`` (Mentzer, Minnen, Agustsson & Tschannen, "Finite Scalar Quantization:
VQ-VAE Made Simple", ICLR 2024; the quantiser family of Fish-Speech's tokenizer). z is projected
to d = len(levels) dimensions, each bounded to its L_j levels by
f(z) = tanh(z + atanh(o / h)) h - o, h = (L_j - 1)(1 - 1e-3) / 2, o = 0.5 for even L_j else 0
(the offset gives an even count of levels, as the paper's code), rounded with a straight-through
gradient and scaled to [-1, 1] by floor(L_j / 2). The codebook is implicit: the grid's
prod(L_j) points, index = sum_j (code_j + floor(L_j / 2)) prod_{i<j} L_i. No codebook loss is
needed, so the commitment term is 0. The code is projected back to code_dim. (The paper's code
writes tan(o / h) for the shift; atanh is the value that maps z = 0 to 0.)

Both return {"q" (straight-through), "indices", "commitment", "perplexity", "usage"}:
perplexity exp(H(p)) of the batch's code frequencies p (the mean one-hot) and usage, the share
of the K codes the batch used; ``lookup(indices)`` gives the code vectors of given indices.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from utils import distributed


def code_statistics(indices: torch.Tensor, num_codes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(perplexity exp(H(mean one-hot)), share of the codes used) of a batch of indices."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes).float()
    p = counts / counts.sum().clamp_min(1.0)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return entropy.exp(), (counts > 0).float().mean()


class EMAVectorQuantizer(nn.Module):
    def __init__(self, num_codes: int = 512, code_dim: int = 64, decay: float = 0.99,
                 eps: float = 1e-5, data_init: bool = True):
        super().__init__()
        if num_codes < 2:
            raise ValueError(f"model.num_codes={num_codes} must be at least 2")
        if not 0 <= decay < 1:
            raise ValueError(f"model.decay={decay} must lie in [0, 1) (the paper: 0.99)")
        if eps <= 0:
            raise ValueError(f"model.eps={eps} must be > 0 (the Laplace smoothing of the counts)")
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.decay, self.eps = float(decay), float(eps)
        codebook = torch.randn(self.num_codes, self.code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(self.num_codes))    # N_i
        self.register_buffer("code_sum", codebook.clone())                  # m_i
        self.register_buffer("initialised", torch.tensor(not data_init))
        self.frozen = False          # set by the model: no update at all while frozen

    @property
    def updates(self) -> bool:
        return self.training and not self.frozen

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook)

    def forward(self, z: torch.Tensor) -> dict:
        """z [..., code_dim] -> q [..., code_dim], indices [...] and the statistics."""
        shape = z.shape
        # distances and averages in fp32 whatever the autocast: ties and small counts matter
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.detach().reshape(-1, self.code_dim).float()
            if self.updates and not bool(self.initialised):
                self._init_from(flat)
            distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
                         + self.codebook.pow(2).sum(1))
            indices = distances.argmin(1)
            e = self.lookup(indices)                     # a copy: the update below leaves it as it is
            if self.updates:
                self._ema_update(flat, indices)
        e = e.view(shape).to(z.dtype)
        commitment = F.mse_loss(z.float(), e.float().detach())
        perplexity, usage = code_statistics(indices, self.num_codes)
        return {"q": z + (e - z).detach(), "indices": indices.view(shape[:-1]),
                "commitment": commitment, "perplexity": perplexity, "usage": usage}

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        n = flat.shape[0]
        if n >= self.num_codes:
            chosen = flat[torch.randperm(n, device=flat.device)[:self.num_codes]]
        else:       # fewer vectors than codes: repeats, made distinct by a little noise
            chosen = flat[torch.randint(0, n, (self.num_codes,), device=flat.device)]
            chosen = chosen + 0.01 * flat.std().clamp_min(1e-6) * torch.randn_like(chosen)
        self.codebook.copy_(chosen)
        self.code_sum.copy_(chosen)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.num_codes).float()
        sums = torch.zeros_like(self.code_sum).index_add_(0, indices, flat)
        counts, sums = distributed.all_reduce_mean(counts), distributed.all_reduce_mean(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.copy_(self.code_sum / smoothed.unsqueeze(1))


class FiniteScalarQuantizer(nn.Module):
    def __init__(self, levels: Sequence[int] = (8, 5, 5, 5), code_dim: int = 64, eps: float = 1e-3):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"model.levels={levels} must be a non-empty list of level counts, "
                             "each at least 2 (the paper: [8, 5, 5, 5], 1000 codes)")
        self.num_codes, self.code_dim, self.eps = math.prod(levels), int(code_dim), float(eps)
        basis = [math.prod(levels[:j]) for j in range(len(levels))]
        # constants of the grid, rebuilt from the config: not part of a checkpoint
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        self.register_buffer("basis", torch.tensor(basis), persistent=False)
        self.register_buffer("half_width", torch.tensor(levels) // 2, persistent=False)
        self.project_in = nn.Linear(self.code_dim, len(levels))
        self.project_out = nn.Linear(len(levels), self.code_dim)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Each dimension squashed into (-L/2, L/2) (shifted by 1/2 for even L) before rounding."""
        levels = self.levels.to(z.dtype)
        half = (levels - 1) * (1 - self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        return torch.tanh(z + torch.atanh(offset / half)) * half - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Grid points in [-1, 1] per dimension, with the rounding's gradient taken as 1."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / self.half_width.to(z.dtype)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        digits = torch.round(codes * self.half_width).long() + self.half_width
        return (digits * self.basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        digits = (indices.unsqueeze(-1) // self.basis) % self.levels
        return (digits - self.half_width).float() / self.half_width

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.indices_to_codes(indices).to(self.project_out.weight.dtype))

    def forward(self, z: torch.Tensor) -> dict:
        """z [..., code_dim] -> q [..., code_dim] (projected grid point), indices [...], stats."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            codes = self.quantize(self.project_in(z.float()))
        indices = self.codes_to_indices(codes.detach())
        perplexity, usage = code_statistics(indices, self.num_codes)
        return {"q": self.project_out(codes).to(z.dtype), "indices": indices,
                "commitment": z.new_zeros((), dtype=torch.float32),
                "perplexity": perplexity, "usage": usage}
