"""TF-C: self-supervised pretraining via time-frequency consistency (Zhang, Zhao,
Tsiligkaridis & Zitnik, NeurIPS 2022).

Time encoder G_T on x and frequency encoder G_F on its magnitude spectrum x^F = |FFT(x)|
give h^T, h^F; projectors R_T, R_F (Linear-BN-ReLU-Linear, 256 -> 128) map them into the
shared time-frequency space, z^T, z^F. A second view of each input comes from a
time-domain augmentation (x~) and a frequency-domain perturbation (x~^F). The loss
(utils.losses.tfc.TFCLoss) is NT-Xent within each domain (h^T vs h~^T, h^F vs h~^F)
plus the consistency term that keeps z^T of an input closer to its own z^F than to the
augmented views' embeddings, by a margin delta.

Series are aligned to ``seq_len`` steps (cut, or zero-padded), as the official code's
TSlength_aligned. Representation (``encode``/``embed``): [z^T, z^F] (256-d), what the
paper's classifier reads. Fine-tuning as in the paper (task.protocol=tfc_finetune,
utils/protocols/tfc_finetune.py): ``make_head`` (Linear 256->64, sigmoid, Linear
64->classes) trained with cross-entropy plus the pretext loss on the same batch
(``finetune_loss``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from layers.tfc_layers import frequency_bank, magnitude_spectrum, make_encoder, time_bank
from models.ssl.base import RepresentationModel


def align_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """x [B, T, C] -> [B, length, C]: the first ``length`` steps, zero-padded if shorter."""
    x = torch.nan_to_num(x, nan=0.0)
    if x.size(1) >= length:
        return x[:, :length]
    return F.pad(x, (0, 0, 0, length - x.size(1)))


def projector(in_dim: int, hidden: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


class TFCHead(nn.Module):
    """The paper's fine-tuning classifier on [z^T, z^F]."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64):
        super().__init__()
        self.fc = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(torch.sigmoid(self.fc(z)))


class TFC(RepresentationModel):
    def __init__(self, in_channels: int, seq_len: int, encoder: str = "transformer",
                 nhead: int = 2, num_layers: int = 2, cnn_channels=(32, 64, 128),
                 kernel_size: int = 8, dropout: float = 0.35, proj_hidden: int = 256,
                 proj_dim: int = 128, time_aug: str = "bank", jitter_ratio: float = 0.8,
                 jitter_scale_ratio: float = 1.1, max_seg: int = 5, freq_ratio: float = 0.1):
        super().__init__()
        self.in_channels, self.seq_len = in_channels, seq_len
        kw = dict(nhead=nhead, num_layers=num_layers, cnn_channels=cnn_channels,
                  kernel_size=kernel_size, dropout=dropout)
        self.encoder_t, h_dim = make_encoder(encoder, in_channels, seq_len, **kw)
        self.encoder_f, _ = make_encoder(encoder, in_channels, seq_len, **kw)
        self.projector_t = projector(h_dim, proj_hidden, proj_dim)
        self.projector_f = projector(h_dim, proj_hidden, proj_dim)
        self.time_aug, self.jitter_ratio = time_aug, jitter_ratio
        self.jitter_scale_ratio, self.max_seg, self.freq_ratio = jitter_scale_ratio, max_seg, freq_ratio
        self.repr_dim = 2 * proj_dim

    def _views(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [B, T, C] -> channel-first (x, x~, x^F, x~^F), each [B, C, seq_len]."""
        xt = align_length(x, self.seq_len)
        xf = magnitude_spectrum(xt)
        xt_aug = time_bank(xt, self.jitter_ratio, self.jitter_scale_ratio, self.max_seg, self.time_aug)
        xf_aug = frequency_bank(xf, self.freq_ratio)
        return tuple(v.transpose(1, 2) for v in (xt, xt_aug, xf, xf_aug))

    def _encode_pair(self, xt: torch.Tensor, xf: torch.Tensor):
        h_t = self.encoder_t(xt)
        h_f = self.encoder_f(xf)
        return h_t, self.projector_t(h_t), h_f, self.projector_f(h_f)

    def forward(self, batch: dict) -> dict:
        xt, xt_aug, xf, xf_aug = self._views(batch["x"])
        h_t, z_t, h_f, z_f = self._encode_pair(xt, xf)
        h_ta, z_ta, h_fa, z_fa = self._encode_pair(xt_aug, xf_aug)
        return {"h_t": h_t, "z_t": z_t, "h_f": h_f, "z_f": z_f, "h_t_aug": h_ta,
                "z_t_aug": z_ta, "h_f_aug": h_fa, "z_f_aug": z_fa}

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """[z^T, z^F] of the unaugmented input: [B, 256] ([B, 1, 256] for pooling=None: TF-C
        has no per-step representation)."""
        xt = align_length(x, self.seq_len)
        _, z_t, _, z_f = self._encode_pair(xt.transpose(1, 2), magnitude_spectrum(xt).transpose(1, 2))
        z = torch.cat([z_t, z_f], dim=-1)
        return z.unsqueeze(1) if pooling is None else z

    # ---- fine-tuning as in the paper ------------------------------------------------------
    def make_head(self, num_classes: int) -> nn.Module:
        return TFCHead(self.repr_dim, num_classes)

    def finetune_loss(self, x: torch.Tensor, criterion) -> tuple[torch.Tensor, torch.Tensor]:
        """(pretext loss on x, [z^T, z^F] of x) in one pass, for cross-entropy + pretext."""
        out = self.forward({"x": x})
        loss = criterion(out, None)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        return loss, torch.cat([out["z_t"], out["z_f"]], dim=-1)
