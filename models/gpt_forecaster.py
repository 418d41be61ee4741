"""A GPT-style forecaster: a causal Transformer over patches that predicts the next patch,
forecasting by generating the horizon one patch at a time (autoregressive rollout).

Tokens. As PatchTST, every channel is forecast on its own with shared weights (channel
independence) after RevIN; its series is cut into non-overlapping patches of ``patch_len``
steps (a token must end where the next one starts, so the patches cannot overlap). When
seq_len is not a multiple of patch_len, the oldest seq_len mod patch_len steps are left out, so
the last patch ends at the last observed step (RevIN's statistics are taken over the steps
the patches cover). A linear patch embedding plus learned positions
enter GPT-1's decoder (layers/gpt_decoder.py); a linear head maps the state of patch i to the
values of patch i + 1.

Training: teacher forcing, as GPT is trained. The model sees the lookback and the true future
(``future``, [B, pred_len, C], passed by task=forecast in training only) as one sequence of
patches, and every position predicts the next patch; the loss is the MSE over all predicted
patches (lookback and horizon), on the data's scale like PatchTST's. ``forward`` then returns
{"pred", "true"} for that loss.

Forecasting (evaluation, or training without ``future``): from the lookback's patches the
model predicts the next patch, appends it to its input and repeats until the horizon is covered
(ceil(pred_len / patch_len) patches, the last one cut to pred_len); it returns the forecast
[B, pred_len, C]. Validation and test therefore score exactly what is deployed, errors of
earlier patches included.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from layers.gpt_decoder import GPTDecoder, init_gpt
from layers.revin import RevIN
from models.base import BaseModel


class GPTForecaster(BaseModel):
    def __init__(self, enc_in: int, seq_len: int, pred_len: int, c_out: int | None = None,
                 patch_len: int = 16, d_model: int = 16, depth: int = 3, num_heads: int = 4,
                 d_ff: int = 128, dropout: float = 0.3, revin: bool = True, affine: bool = False):
        super().__init__()
        if patch_len < 1:
            raise ValueError(f"model.patch_len must be >= 1, got {patch_len}")
        if seq_len < patch_len:
            raise ValueError(f"data.seq_len={seq_len} is shorter than one patch of "
                             f"model.patch_len={patch_len}; lower model.patch_len")
        if c_out is not None and c_out != enc_in:
            raise ValueError(f"the GPT forecaster forecasts every input channel ({enc_in}) and is "
                             f"trained on their true futures, but the data's target has {c_out} "
                             "channel(s) (data.features=MS); use data.features=M or S")
        self.patch_len, self.pred_len = patch_len, pred_len
        self.n_in = seq_len // patch_len
        self.n_out = math.ceil(pred_len / patch_len)
        self.revin = RevIN(enc_in, affine=affine) if revin else None
        self.patch_embed = nn.Linear(patch_len, d_model)
        # the decoder never takes the last forecast patch as input
        self.position = nn.Embedding(self.n_in + self.n_out - 1, d_model)
        self.drop = nn.Dropout(dropout)
        self.decoder = GPTDecoder(d_model, depth, num_heads, d_ff, dropout)
        self.head = nn.Linear(d_model, patch_len)
        init_gpt(self)

    def next_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """patches [S, N, patch_len] -> predictions of patches 1..N [S, N, patch_len]."""
        n = patches.size(1)
        h = self.drop(self.patch_embed(patches) + self.position.weight[:n])
        return self.head(self.decoder(h))

    def forward(self, x: torch.Tensor, future: torch.Tensor | None = None):
        B, L, C = x.shape
        lookback = x[:, L - self.n_in * self.patch_len:]     # the steps the patches cover
        x = self.revin.normalize(lookback) if self.revin is not None else lookback
        series = x.permute(0, 2, 1).reshape(B * C, self.n_in, self.patch_len)
        if future is not None:
            return self._teacher_forced(lookback, series, future)
        forecast = self._rollout(series)
        forecast = forecast.reshape(B, C, -1)[:, :, :self.pred_len].permute(0, 2, 1)
        return self.revin.denormalize(forecast) if self.revin is not None else forecast

    def _rollout(self, patches: torch.Tensor) -> torch.Tensor:
        generated = []
        for _ in range(self.n_out):
            nxt = self.next_patches(patches)[:, -1:]
            generated.append(nxt)
            patches = torch.cat([patches, nxt], dim=1)
        return torch.cat(generated, dim=1)            # [S, n_out, patch_len]

    def _teacher_forced(self, lookback: torch.Tensor, patches: torch.Tensor,
                        future: torch.Tensor) -> dict:
        B, used, C = lookback.shape
        if future.shape != (B, self.pred_len, C):
            raise ValueError(f"future {tuple(future.shape)} does not match the forecast "
                             f"[batch, pred_len, channels] = {(B, self.pred_len, C)}")
        raw_future = future
        if self.revin is not None:
            future = self.revin.normalize_like(future)
        # inputs: the lookback's patches and every future patch but the last
        known = (self.n_out - 1) * self.patch_len
        given = future[:, :known].permute(0, 2, 1).reshape(B * C, self.n_out - 1, self.patch_len)
        pred = self.next_patches(torch.cat([patches, given], dim=1))
        # position i predicts the values right after its patch, up to the horizon's end
        pred = pred.reshape(B, C, -1)[:, :, :used - self.patch_len + self.pred_len].permute(0, 2, 1)
        if self.revin is not None:
            pred = self.revin.denormalize(pred)
        true = torch.cat([lookback[:, self.patch_len:], raw_future], dim=1)
        return {"pred": pred, "true": true}
