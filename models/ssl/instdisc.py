"""Instance discrimination (Wu et al., CVPR 2018): every series is its own class.

Features are 128-d, L2-normalised projections of the encoder's representation. A memory
bank holds one feature per training series (``n_pretrain`` rows, addressed by the batch's
"index"); the non-parametric softmax P(i|f) = exp(v_i . f / tau) / Z (tau = 0.07) is
trained with the NCE approximation against ``nce_k`` = 4096 noise samples drawn uniformly
from the bank, Z being estimated once from the first batch (Monte Carlo, as the paper) and
then held fixed. After every step the bank rows of the batch move towards the new features
with momentum 0.5 and are renormalised. ``nce_k: 0`` (or a bank of at most nce_k + 1 series,
where sampling would cost more than the exact sum) trains the exact softmax over the bank.

Validation batches have no bank rows: their positive is the feature of a second augmented
view of the same series (a held-out discrimination loss against the bank).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.ssl.base import SSLMethod
from utils.distributed import gather


class InstDisc(SSLMethod):
    n_views = 1

    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, n_pretrain: int | None = None, feature_dim: int = 128,
                 temperature: float = 0.07, nce_k: int = 4096, bank_momentum: float = 0.5):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs, augment, pooling,
                         encode_batch_size)
        if not n_pretrain:
            raise ValueError("instdisc needs the number of pretraining series for its memory bank "
                             "(n_pretrain, set by task=pretrain); pass model.n_pretrain=<N> otherwise")
        self.n_data = int(n_pretrain)
        self.projector = nn.Linear(self.repr_dim, feature_dim)
        self.temperature, self.bank_momentum = temperature, bank_momentum
        # NCE approximates the softmax over a bank much larger than the noise sample; with
        # nce_k >= n - 1 the exact softmax is both cheaper and exact
        self.nce_k = int(nce_k) if nce_k and int(nce_k) < self.n_data - 1 else 0
        self.register_buffer("bank", F.normalize(torch.randn(self.n_data, feature_dim), dim=1))
        self.register_buffer("log_z", torch.tensor(float("nan")))   # NaN = not estimated yet
        self.log_z_known = False          # host-side: reading the buffer would wait for the GPU
        self.register_load_state_dict_post_hook(_refresh_log_z_known)
        self._pending = None

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(self.represent(x, mask)), dim=1)

    def forward(self, batch: dict) -> dict:
        (x1, m1), = self.make_views(batch["x"])
        f = self.features(x1, m1)
        index = batch.get("index")
        if self.training:
            if index is None:
                raise ValueError("instdisc trains against a memory bank addressed by the batch key "
                                 "'index' (0..n_pretrain-1); the pretraining dataset must provide it")
            index = index.long().view(-1)
            if index.device.type == "cpu" and int(index.max()) >= self.n_data:   # free on the CPU
                raise ValueError(f"batch index {int(index.max())} >= memory bank size {self.n_data}")
            positive = self.bank[index]
            self._pending = (index, f.detach())
        else:   # held-out series: the positive is a second view's feature
            (x2, m2), = self.make_views(batch["x"])
            positive = self.features(x2, m2).detach()
        if not self.nce_k:   # exact non-parametric softmax over the bank
            if self.training:
                return {"logits": f @ self.bank.t() / self.temperature, "target": index}
            logits = torch.cat([(f * positive).sum(1, keepdim=True), f @ self.bank.t()], 1)
            return {"logits": logits / self.temperature,
                    "target": torch.zeros(len(f), dtype=torch.long, device=f.device)}
        pos_logit = (f * positive).sum(1) / self.temperature
        noise_idx = torch.randint(0, self.n_data, (len(f), self.nce_k), device=f.device)
        noise_logits = torch.einsum("bkd,bd->bk", self.bank[noise_idx], f) / self.temperature
        log_z = self.log_z
        if not self.log_z_known:
            # Z ~ n * mean of exp(v . f / tau) over the first batch's samples (kept fixed; of
            # every process's batch, so all ranks hold the same Z)
            all_logits = gather(torch.cat([pos_logit.unsqueeze(1), noise_logits], 1).detach())
            log_z = torch.logsumexp(all_logits.flatten(), 0) - math.log(all_logits.numel()) \
                + math.log(self.n_data)
            if self.training:
                self.log_z.copy_(log_z)
                self.log_z_known = True
        return {"pos_logit": pos_logit, "noise_logits": noise_logits, "log_z": log_z,
                "n_data": self.n_data}

    @torch.no_grad()
    def update_bank(self, index: torch.Tensor, features: torch.Tensor) -> None:
        v = self.bank[index] * self.bank_momentum + features * (1 - self.bank_momentum)
        self.bank[index] = F.normalize(v, dim=1)

    def after_optimizer_step(self, step: int) -> None:
        super().after_optimizer_step(step)
        if self._pending is not None:
            index, features = self._pending
            self.update_bank(gather(index), gather(features))   # rows of every process's batch
            self._pending = None


def _refresh_log_z_known(module, incompatible_keys) -> None:
    """A loaded checkpoint brings its estimate of Z (or NaN: not estimated yet)."""
    module.log_z_known = not bool(torch.isnan(module.log_z))
