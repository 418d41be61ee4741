"""A VQ tokenizer with an autoregressive prior over its codes: Fish-Speech's two-stage pipeline
(Liao et al., "Fish-Speech: Leveraging Large Language Models for Advanced Multilingual
Text-to-Speech Synthesis", 2024) applied to series [B, T, C], with the prior of VQ-VAE
(van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017).

Stage 1, the tokenizer (a VQ-VAE). A 1-D convolutional encoder - a Conv1d stem, then
``downsample`` stride-2 convolutions (kernel 4, as the paper's) each followed by
``res_blocks`` residual blocks (ReLU, 3-tap conv, ReLU, 1-tap conv, added to the input: the
paper's block in 1-D) - maps a window, zero-padded at its end to a multiple of
2**downsample steps, to N = T_pad / 2**downsample vectors; a quantiser
(layers/vector_quantizer.py: ``quantizer=ema``, the paper's nearest-neighbour codebook trained
by moving averages, or ``quantizer=fsq``, finite scalar quantisation, the family of Fish-Speech's
tokenizer) turns them into N codes; a mirrored decoder (residual blocks, then transposed
convolutions) maps the codes back to the window, cropped to T. Its loss is the reconstruction
MSE plus beta times the commitment loss (beta = 0.25, the paper's), the decoder's gradient
copied straight through the quantiser.

Stage 2, the prior. A causal Transformer (GPT-1 blocks, layers/gpt_decoder.py) reads a class
token followed by the codes and predicts each next code (cross-entropy over the K codes). The
class token is an embedding of num_classes + 1 entries, the last one "no class", used when the
model has no classes or no label is given. The codes are the tokenizer's indices, integers:
the cross-entropy never reaches the tokenizer, and the reconstruction never reaches the prior.

Training both in one loop. The objective is always recon_mse + beta commitment + prior_ce
(utils/losses/vq_prior.py), so validation losses, early stopping and the best checkpoint compare
epochs on one scale. Fish-Speech trains its AR model on a trained tokenizer; here, from epoch
``tokenizer_epochs`` on (``on_train_epoch_start``), the tokenizer (encoder, quantiser, decoder)
is frozen - no gradients, no codebook updates, kept in eval mode whatever ``train()`` is
called - and the prior finishes training on fixed codes. The hook sets the state from the epoch
alone, so a resumed run is frozen again at its resumed epoch. ``tokenizer_epochs=null`` never
freezes it.

What differs from the papers, and why: VQ-VAE fits its PixelCNN prior after the VQ-VAE, in a
second run; one run with a freeze epoch gives the same two stages inside the framework's single
training loop. The prior sees one window of N codes (Fish-Speech's context is a whole
utterance), and is conditioned on a class label instead of text.

Sampling (``sample``): from the class token, each next code is drawn from
softmax(logits / ``temperature``), optionally restricted to the ``top_k`` most likely, with
torch.multinomial on ``generator``; the N codes are decoded to [n, seq_len, C].
``continue_series`` keeps the codes of the first floor(prefix_len / 2**downsample) positions of
a window (encoded with everything after prefix_len zeroed, so nothing later is read), samples
the rest and decodes the whole window. Both run without gradients in eval mode and restore the
model's mode.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from layers.gpt_decoder import GPTDecoder, init_gpt
from layers.vector_quantizer import EMAVectorQuantizer, FiniteScalarQuantizer
from models.base import BaseModel
from utils.module_state import evaluating

QUANTIZERS = ("ema", "fsq")


class ResBlock1d(nn.Module):
    """VQ-VAE's residual block in 1-D: x + Conv1x1(ReLU(Conv3(ReLU(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels, 3, padding=1),
                                  nn.ReLU(), nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_encoder(in_ch: int, hidden: int, code_dim: int, downsample: int, res_blocks: int) -> nn.Sequential:
    """[B, C, T] -> [B, code_dim, T / 2**downsample] (T a multiple of 2**downsample)."""
    layers: list[nn.Module] = [nn.Conv1d(in_ch, hidden, 3, padding=1)]
    for _ in range(downsample):
        layers.append(nn.Conv1d(hidden, hidden, 4, stride=2, padding=1))       # halves the length
        layers += [ResBlock1d(hidden) for _ in range(res_blocks)]
    layers += [nn.ReLU(), nn.Conv1d(hidden, code_dim, 1)]
    return nn.Sequential(*layers)


def conv_decoder(code_dim: int, hidden: int, out_ch: int, upsample: int, res_blocks: int) -> nn.Sequential:
    """The encoder mirrored: [B, code_dim, N] -> [B, out_ch, N * 2**upsample]."""
    layers: list[nn.Module] = [nn.Conv1d(code_dim, hidden, 3, padding=1)]
    for _ in range(upsample):
        layers += [ResBlock1d(hidden) for _ in range(res_blocks)]
        layers += [nn.ReLU(), nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1)]   # doubles it
    layers += [nn.ReLU(), nn.Conv1d(hidden, out_ch, 3, padding=1)]
    return nn.Sequential(*layers)


class VQPrior(BaseModel):
    def __init__(self, enc_in: int, seq_len: int, num_classes: int = 0, quantizer: str = "ema",
                 num_codes: int = 512, code_dim: int = 64, decay: float = 0.99, eps: float = 1e-5,
                 data_init: bool = True, levels: Sequence[int] = (8, 5, 5, 5),
                 hidden_channels: int = 64, downsample: int = 2, res_blocks: int = 2,
                 d_model: int = 128, depth: int = 2, num_heads: int = 4, d_ff: int = 512,
                 dropout: float = 0.1, tokenizer_epochs: int | None = None,
                 temperature: float = 1.0, top_k: int | None = None):
        super().__init__()
        _check_options(quantizer, downsample, tokenizer_epochs, temperature, top_k,
                       {"code_dim": code_dim, "hidden_channels": hidden_channels, "d_model": d_model,
                        "depth": depth, "num_heads": num_heads, "d_ff": d_ff, "enc_in": enc_in,
                        "seq_len": seq_len})
        if res_blocks < 0:
            raise ValueError(f"model.res_blocks={res_blocks} must be >= 0")
        if d_model % num_heads:
            raise ValueError(f"model.d_model={d_model} must be divisible by model.num_heads={num_heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.dropout={dropout} must lie in [0, 1)")
        self.enc_in, self.seq_len, self.num_classes = int(enc_in), int(seq_len), int(num_classes)
        self.stride = 2 ** int(downsample)
        self.num_positions = -(-self.seq_len // self.stride)          # N codes per window
        self.tokenizer_epochs = None if tokenizer_epochs is None else int(tokenizer_epochs)
        self.temperature, self.top_k = float(temperature), None if top_k is None else int(top_k)

        # stage 1: the tokenizer
        self.encoder = conv_encoder(self.enc_in, hidden_channels, code_dim, downsample, res_blocks)
        if quantizer == "ema":
            self.quantizer = EMAVectorQuantizer(num_codes, code_dim, decay, eps, data_init)
        else:
            self.quantizer = FiniteScalarQuantizer(levels, code_dim)
        self.decoder = conv_decoder(code_dim, hidden_channels, self.enc_in, downsample, res_blocks)
        self.num_codes = self.quantizer.num_codes
        self.tokenizer_frozen = False

        # stage 2: the prior over the codes
        self.code_embed = nn.Embedding(self.num_codes, d_model)
        self.class_embed = nn.Embedding(self.num_classes + 1, d_model)    # last entry: no class
        self.position = nn.Embedding(self.num_positions, d_model)
        self.drop = nn.Dropout(dropout)
        self.transformer = GPTDecoder(d_model, depth, num_heads, d_ff, dropout)
        self.head = nn.Linear(d_model, self.num_codes)
        for module in self.prior_modules():
            init_gpt(module)

    # ------------------------------------------------------------------ parts
    def tokenizer_modules(self) -> list[nn.Module]:
        return [self.encoder, self.quantizer, self.decoder]

    def prior_modules(self) -> list[nn.Module]:
        return [self.code_embed, self.class_embed, self.position, self.transformer, self.head]

    # ------------------------------------------------------------------ training hooks
    def on_train_epoch_start(self, epoch: int) -> None:
        """Frozen tokenizer from epoch ``tokenizer_epochs`` on; decided by the epoch alone, so a
        resumed run gets the state its epoch implies."""
        self.freeze_tokenizer(self.tokenizer_epochs is not None and epoch >= self.tokenizer_epochs)

    def freeze_tokenizer(self, frozen: bool = True) -> None:
        self.tokenizer_frozen = bool(frozen)
        for module in self.tokenizer_modules():
            for p in module.parameters():
                p.requires_grad_(not frozen)
        self.quantizer.frozen = self.tokenizer_frozen
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.tokenizer_frozen:          # a frozen tokenizer stays in eval mode (no EMA updates)
            for module in self.tokenizer_modules():
                module.eval()
        return self

    # ------------------------------------------------------------------ tokenizer
    def tokenize(self, x: torch.Tensor) -> dict:
        """x [B, T, C] -> the quantiser's outputs: q [B, N, code_dim], indices [B, N], stats."""
        self._check(x)
        pad = (-x.shape[1]) % self.stride
        h = self.encoder(F.pad(x.transpose(1, 2), (0, pad)))
        return self.quantizer(h.transpose(1, 2))

    def decode(self, q: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """q [B, N, code_dim] -> [B, length (default seq_len), C]."""
        out = self.decoder(q.transpose(1, 2)).transpose(1, 2)
        return out[:, :self.seq_len if length is None else length]

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(indices))

    # ------------------------------------------------------------------ prior
    def prior_logits(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """codes [B, m] (m < N), labels [B] -> logits [B, m + 1, K]: position i predicts code i
        from the class token and codes 0..i-1."""
        h = torch.cat([self.class_embed(labels).unsqueeze(1), self.code_embed(codes)], dim=1)
        h = self.drop(h + self.position.weight[:h.shape[1]])
        return self.head(self.transformer(h))

    def class_tokens(self, y: torch.Tensor | None, n: int, device) -> torch.Tensor:
        """The class-token index of each window: y, or "no class" (num_classes)."""
        if self.num_classes == 0 or y is None:
            return torch.full((n,), self.num_classes, dtype=torch.long, device=device)
        y = torch.as_tensor(y, device=device).reshape(-1).long()
        if y.numel() != n:
            raise ValueError(f"got {y.numel()} labels for {n} windows; give one per window")
        return y

    # ------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        """x [B, T, C] -> {"x_hat", "x", "commitment", "logits" [B, N, K], "indices" [B, N],
        "perplexity", "usage"}: the terms of utils/losses/vq_prior.py."""
        vq = self.tokenize(x)
        codes = vq["indices"].detach()
        logits = self.prior_logits(codes[:, :-1], self.class_tokens(y, x.shape[0], x.device))
        return {"x_hat": self.decode(vq["q"], x.shape[1]), "x": x, "commitment": vq["commitment"],
                "logits": logits, "indices": codes, "perplexity": vq["perplexity"],
                "usage": vq["usage"]}

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n new windows [n, seq_len, C] (of class y [n] when the model has classes)."""
        device = self.position.weight.device
        with evaluating(self):
            labels = self.class_tokens(y, n, device)
            codes = self.sample_codes(torch.zeros(n, 0, dtype=torch.long, device=device), labels, generator)
            return self.decode_indices(codes)

    def continue_series(self, x_prefix: torch.Tensor, prefix_len: int, y: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, return_codes: bool = False):
        """A window [B, seq_len, C] that keeps the codes of the first prefix_len steps of
        ``x_prefix`` [B, L, C] (prefix_len <= L <= seq_len; steps from prefix_len on are not
        read) and draws the rest; with ``return_codes`` also its codes [B, N]."""
        prefix_len = int(prefix_len)
        if x_prefix.dim() != 3 or not 0 <= prefix_len <= x_prefix.shape[1] <= self.seq_len:
            raise ValueError(f"continue_series takes x_prefix [batch, L, {self.enc_in}] with "
                             f"prefix_len <= L <= seq_len={self.seq_len}; got shape "
                             f"{tuple(x_prefix.shape)} and prefix_len={prefix_len}")
        with evaluating(self):
            window = torch.zeros(x_prefix.shape[0], self.seq_len, self.enc_in,
                                 dtype=x_prefix.dtype, device=x_prefix.device)
            window[:, :prefix_len] = x_prefix[:, :prefix_len]
            kept = self.tokenize(window)["indices"][:, :prefix_len // self.stride]
            codes = self.sample_codes(kept, self.class_tokens(y, len(window), window.device), generator)
            out = self.decode_indices(codes)
        return (out, codes) if return_codes else out

    @torch.no_grad()
    def sample_codes(self, prefix: torch.Tensor, labels: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """prefix [n, m] completed to [n, N] codes drawn one at a time from the prior."""
        codes = prefix
        while codes.shape[1] < self.num_positions:
            logits = self.prior_logits(codes, labels)[:, -1].float() / self.temperature
            if self.top_k is not None and self.top_k < self.num_codes:
                kth = logits.topk(self.top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            codes = torch.cat([codes, nxt], dim=1)
        return codes

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.enc_in or x.shape[1] > self.seq_len:
            raise ValueError(f"VQPrior takes series [batch, time <= {self.seq_len}, {self.enc_in}] "
                             f"(enc_in={self.enc_in}, seq_len={self.seq_len}); got shape {tuple(x.shape)}")


def _check_options(quantizer, downsample, tokenizer_epochs, temperature, top_k, sizes: dict) -> None:
    if quantizer not in QUANTIZERS:
        raise ValueError(f"model.quantizer={quantizer!r} is not known; choose one of {', '.join(QUANTIZERS)}")
    if downsample < 1:
        raise ValueError(f"model.downsample={downsample} must be at least 1 (the codes per window "
                         "are seq_len / 2**downsample)")
    if tokenizer_epochs is not None and tokenizer_epochs < 0:
        raise ValueError(f"model.tokenizer_epochs={tokenizer_epochs} must be >= 0 (the epoch the "
                         "tokenizer is frozen from) or null (never frozen)")
    if not temperature > 0:
        raise ValueError(f"model.temperature={temperature} must be > 0 (1.0: the prior's own distribution)")
    if top_k is not None and top_k < 1:
        raise ValueError(f"model.top_k={top_k} must be null (all codes) or at least 1")
    for key, value in sizes.items():
        if value < 1:
            raise ValueError(f"model.{key}={value} must be at least 1")
