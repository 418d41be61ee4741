"""PatchTST (Nie et al., "A Time Series is Worth 64 Words: Long-term Forecasting with
Transformers", ICLR 2023).

Each channel is forecast on its own with shared weights (channel independence): RevIN ->
split the univariate series into (overlapping) patches -> linear patch embedding + learnable
position -> Transformer encoder (BatchNorm, residual attention scores) -> flatten all patch
representations -> one linear layer to the horizon -> RevIN back.

``head_type="pretrain"``: masked-patch self-supervised pretraining. Non-overlapping patches, a
random 40 % of each series' patches are zeroed, and a linear head reconstructs every patch;
the loss (utils.losses.forecast.MaskedPatchMSE) is the MSE on the masked patches only.
``pretrained=<checkpoint>`` loads a pretrained backbone for fine-tuning, and
``freeze_backbone=true`` trains the head only (linear probing); ``freeze_epochs=N`` trains
the head alone for N epochs, then the whole network (the paper's fine-tuning).
"""
from __future__ import annotations

import logging
import math

import torch
from torch import nn

from layers.patching import Patching, random_patch_mask
from layers.revin import RevIN
from models.base import BaseModel
from utils.checkpoint import load_checkpoint
from utils.module_state import evaluating

log = logging.getLogger(__name__)


class _BatchNormTime(nn.Module):
    """BatchNorm1d over d_model for [B, N, d] tensors (PatchTST normalises with BN)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(d_model)

    def forward(self, x):
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class ResidualMultiheadAttention(nn.Module):
    """Multi-head self-attention that can add the previous layer's pre-softmax scores
    (PatchTST's ``res_attention``, from RealFormer) and returns its own."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float = 0.0,
                 proj_dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.h, self.dk = n_heads, d_model // n_heads
        self.W_Q = nn.Linear(d_model, d_model)
        self.W_K = nn.Linear(d_model, d_model)
        self.W_V = nn.Linear(d_model, d_model)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.out = nn.Sequential(nn.Linear(d_model, d_model), nn.Dropout(proj_dropout))

    def forward(self, x, prev=None):
        B, N, _ = x.shape
        q, k, v = (w(x).view(B, N, self.h, self.dk).transpose(1, 2)
                   for w in (self.W_Q, self.W_K, self.W_V))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dk)
        if prev is not None:
            scores = scores + prev
        attn = self.attn_dropout(torch.softmax(scores, dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.out(out), scores


class TSTEncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout, attn_dropout, activation):
        super().__init__()
        self.attn = ResidualMultiheadAttention(d_model, n_heads, attn_dropout, dropout)
        self.drop_attn, self.drop_ffn = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_attn, self.norm_ffn = _BatchNormTime(d_model), _BatchNormTime(d_model)
        act = {"gelu": nn.GELU, "relu": nn.ReLU}[activation]
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), act(), nn.Dropout(dropout),
                                nn.Linear(d_ff, d_model))

    def forward(self, x, prev=None):
        y, scores = self.attn(x, prev)
        x = self.norm_attn(x + self.drop_attn(y))
        x = self.norm_ffn(x + self.drop_ffn(self.ff(x)))
        return x, scores


class PatchTSTBackbone(nn.Module):
    """[B, C, N, patch_len] patches -> [B, C, N, d_model], weights shared across channels."""

    def __init__(self, n_patches, patch_len, d_model, n_heads, d_ff, e_layers, dropout,
                 attn_dropout, activation, res_attention):
        super().__init__()
        self.W_P = nn.Linear(patch_len, d_model)
        self.W_pos = nn.Parameter(torch.empty(n_patches, d_model).uniform_(-0.02, 0.02))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(TSTEncoderLayer(d_model, n_heads, d_ff, dropout,
                                                    attn_dropout, activation)
                                    for _ in range(e_layers))
        self.res_attention = res_attention

    def forward(self, patches):
        B, C, N, _ = patches.shape
        z = self.dropout(self.W_P(patches).reshape(B * C, N, -1) + self.W_pos)
        scores = None
        for layer in self.layers:
            z, s = layer(z, scores)
            scores = s if self.res_attention else None
        return z.reshape(B, C, N, -1)


class PatchTST(BaseModel):
    def __init__(self, enc_in: int, seq_len: int, pred_len: int, patch_len: int = 16,
                 stride: int = 8, padding_patch: str | None = "end", d_model: int = 128,
                 n_heads: int = 16, e_layers: int = 3, d_ff: int = 256, dropout: float = 0.2,
                 attn_dropout: float = 0.0, fc_dropout: float = 0.2, head_dropout: float = 0.0,
                 activation: str = "gelu", res_attention: bool = True, revin: bool = True,
                 affine: bool = False, subtract_last: bool = False,
                 head_type: str = "prediction", mask_ratio: float = 0.4,
                 pretrained: str | None = None, freeze_backbone: bool = False,
                 freeze_epochs: int = 0):
        super().__init__()
        if head_type not in ("prediction", "pretrain"):
            raise ValueError(f"model.head_type must be 'prediction' or 'pretrain', got '{head_type}'")
        self.head_type, self.mask_ratio, self.pred_len = head_type, mask_ratio, pred_len
        self.revin = RevIN(enc_in, affine=affine, subtract_last=subtract_last) if revin else None
        self.patching = Patching(seq_len, patch_len, stride, pad_end=padding_patch == "end")
        n = self.patching.n
        self.backbone = PatchTSTBackbone(n, patch_len, d_model, n_heads, d_ff, e_layers, dropout,
                                         attn_dropout, activation, res_attention)
        if head_type == "prediction":
            # flatten head: all N patch representations of a channel -> its horizon
            self.head = nn.Sequential(nn.Flatten(start_dim=-2), nn.Linear(n * d_model, pred_len),
                                      nn.Dropout(head_dropout))
        else:
            self.head = nn.Sequential(nn.Dropout(fc_dropout), nn.Linear(d_model, patch_len))
        if pretrained:
            self.load_backbone(pretrained)
        self.freeze_backbone, self.freeze_epochs = freeze_backbone, int(freeze_epochs)
        if freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    def on_train_epoch_start(self, epoch: int) -> None:
        """The official fine-tuning: the backbone is frozen for the first ``freeze_epochs``
        (head only), then trained with the head. Its parameters stay in the optimizer and
        get no gradient (so no update) while frozen."""
        if self.freeze_epochs and not self.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(epoch >= self.freeze_epochs)

    def _patches(self, x):
        if self.revin is not None:
            x = self.revin(x, "norm")
        return self.patching(x.transpose(1, 2))            # [B, C, N, P]

    def forward(self, x, x_mark=None, x_dec=None, y_mark=None):
        """x [B, seq_len, C] -> forecast [B, pred_len, C]; in pretrain mode a dict with the
        reconstruction, the target patches and the mask (True = masked) [B, C, N].
        A batch dict is accepted too (task=pretrain calls ``model(batch)``)."""
        if isinstance(x, dict):
            x = x["x"]
        patches = self._patches(x)
        if self.head_type == "pretrain":
            mask = random_patch_mask(patches.shape[:-1], self.mask_ratio, patches.device)
            z = self.backbone(patches.masked_fill(mask[..., None], 0.0))
            return {"pred": self.head(z), "target": patches, "mask": mask}
        z = self.backbone(patches)
        out = self.head(z).transpose(1, 2)                  # [B, pred_len, C]
        if self.revin is not None:
            out = self.revin(out, "denorm")
        return out

    @torch.no_grad()
    def encode(self, x, mask=None, pooling: str | None = "max", batch_size: int = 256):
        """Patch representations of every channel, concatenated, on the CPU: [N, n_patches, C*d]
        (pooling None) or pooled over patches [N, C*d] ("max" / "last"). x [N, seq_len, C]."""
        if pooling not in ("max", "last", None):
            raise ValueError(f"pooling must be 'max', 'last' or None, got '{pooling}'")
        device = next(self.parameters()).device
        x = torch.as_tensor(x, dtype=torch.float32)
        outs = []
        with evaluating(self):
            for i in range(0, len(x), batch_size):
                z = self.backbone(self._patches(x[i:i + batch_size].to(device)))  # [B, C, N, d]
                z = z.permute(0, 2, 1, 3).flatten(2)                             # [B, N, C*d]
                if pooling == "max":
                    z = z.max(dim=1).values
                elif pooling == "last":
                    z = z[:, -1]
                outs.append(z.cpu())
        return torch.cat(outs)

    def load_backbone(self, path: str) -> None:
        """Load the backbone (and RevIN) weights of a pretrained PatchTST checkpoint."""
        ckpt = load_checkpoint(path)
        state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
        own = self.state_dict()
        wanted = {k: v for k, v in state.items() if k.startswith(("backbone.", "revin."))}
        if not wanted:
            raise ValueError(f"{path} holds no PatchTST backbone weights (keys 'backbone.*')")
        bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in wanted.items()
               if k not in own or own[k].shape != v.shape]
        if bad:
            raise ValueError(f"pretrained backbone {path} does not fit this model ({bad[:3]}); "
                             f"use the seq_len, patch_len, stride and widths it was pretrained with")
        self.load_state_dict(wanted, strict=False)
        log.info("loaded the pretrained PatchTST backbone of %s", path)
