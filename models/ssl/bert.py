"""BERT (Devlin et al., NAACL 2019) on patches of a series: masked-patch prediction plus
next-segment prediction.

Tokens. x [B, T, C] is cut into N non-overlapping patches of ``patch_len`` steps (all channels
of a patch form one token, as in models/ssl/mae.py; T is zero-padded to a multiple) and each
patch is embedded linearly: the patch embedding plays the part of BERT's word embedding. As in
BERT's input representation, the sequence is ``[CLS] A [SEP] B [SEP]`` with learned [CLS] and
[SEP] embeddings, and learned segment (A / B) and position embeddings are added to every token,
followed by LayerNorm and dropout. The encoder is BERT's: a bidirectional post-norm Transformer
(LayerNorm after each residual sum, GELU), weights drawn from N(0, 0.02).

Masked-patch prediction (BERT's masked LM). Per sample, round(``mask_ratio`` x N) patch tokens
(15 %) are chosen at random; each chosen token independently becomes the learned [MASK]
embedding with probability 0.8, the embedding of a random other patch of the batch with
probability 0.1, and stays unchanged otherwise (the 80/10/10 rule: the encoder cannot tell
which inputs are real, so it keeps a good representation of every token). A head (dense, GELU,
LayerNorm, then a linear map to the patch's values, as BERT's transform + decoder) predicts the
original patch at every position; the loss (utils/losses/bert.py) is the MSE over the chosen
positions only.

Next-segment prediction (BERT's NSP). Each window is split along time into halves A | B (at a
patch boundary: A = the first N // 2 patches). For half of the samples B is replaced by the
second half of another window of the batch (a random different sample; a batch of one keeps
its own B), so B either continues A (IsNext, label 0 as in BERT) or not (NotNext, label 1).
A pooler (dense + tanh) on the final [CLS] state feeds a two-way classifier; the loss is the
cross-entropy. Masking is drawn after the pairing, on the tokens the encoder actually sees.

What differs from text BERT, and why: series values are continuous, so the vocabulary softmax
becomes a regression head and the random replacement token is a patch of the batch rather than
a word of a vocabulary; segments are the two halves of one window (or of two windows) instead of
two sentences of a document, so the model must judge whether a signal continues smoothly and
plausibly; the [MASK], [CLS] and [SEP] tokens are learned vectors in the embedding space, not
vocabulary entries.

Representations (``embed`` / ``encode``): the encoder on the whole window as one segment A,
``[CLS] patches [SEP]`` with no masking and no split (BERT's single-sentence input); the
contract's pooling (max | mean | last) is taken over the patch states, None gives the per-patch
states [B, N, d_model]; ``cls_state`` gives the final [CLS] state.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from layers.encoders import pool
from models.ssl.base import RepresentationModel

MASKED, RANDOM, KEPT = 1, 2, 3      # what the 80/10/10 rule did to a chosen token (0: not chosen)


def bert_masking(tokens: torch.Tensor, mask_token: torch.Tensor, mask_ratio: float = 0.15,
                 mask_prob: float = 0.8, random_prob: float = 0.1,
                 candidates: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT's masking on token embeddings [B, N, D]: per sample round(mask_ratio * N) tokens
    (at least one) chosen at random among ``candidates`` (bool [B, N], default all); each chosen
    one replaced by ``mask_token`` [D] with probability ``mask_prob``, by the embedding of a
    random other token of the batch with probability ``random_prob``, else kept.
    Returns (corrupted tokens, action long [B, N] in {0, MASKED, RANDOM, KEPT}, source long
    [B, N]: the flat index b * N + n of the token copied into each RANDOM position, else -1)."""
    B, N, D = tokens.shape
    device = tokens.device
    count = min(N, max(1, int(round(mask_ratio * N))))
    scores = torch.rand(B, N, device=device, generator=generator)
    if candidates is not None:
        scores = scores.masked_fill(~candidates.to(torch.bool), 2.0)   # drawn last
    chosen = torch.zeros(B, N, dtype=torch.bool, device=device)
    chosen.scatter_(1, scores.argsort(dim=1)[:, :count], True)
    if candidates is not None:
        chosen &= candidates.to(torch.bool)
    u = torch.rand(B, N, device=device, generator=generator)
    action = torch.where(u < mask_prob, MASKED, torch.where(u < mask_prob + random_prob, RANDOM, KEPT))
    action = torch.where(chosen, action, torch.zeros_like(action))
    # a random token of the batch other than the position itself (BERT: a random word)
    if B * N < 2:
        action = torch.where(action == RANDOM, torch.full_like(action, KEPT), action)
    own = torch.arange(B * N, device=device).view(B, N)
    source = torch.randint(0, max(B * N - 1, 1), (B, N), device=device, generator=generator)
    source = source + (source >= own).long()
    source = torch.where(action == RANDOM, source, torch.full_like(source, -1))
    flat = tokens.reshape(B * N, D)
    out = torch.where((action == MASKED).unsqueeze(-1), mask_token.to(tokens.dtype).expand(B, N, D), tokens)
    out = torch.where((action == RANDOM).unsqueeze(-1), flat[source.clamp_min(0)], out)
    return out, action, source


def next_segment_pairs(patches: torch.Tensor, n_a: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT's NSP pairs on patches [B, N, P] split into A = patches[:, :n_a] and B = the rest:
    each sample keeps its own B (IsNext, label 0) or, with probability 0.5, takes the B of a
    random different sample (NotNext, label 1); a batch of one keeps its own.
    Returns (paired patches [B, N, P], label long [B], partner long [B]: whose B each holds)."""
    B = patches.size(0)
    device = patches.device
    own = torch.arange(B, device=device)
    if B < 2:
        return patches, torch.zeros(B, dtype=torch.long, device=device), own
    other = torch.randint(0, B - 1, (B,), device=device, generator=generator)
    other = other + (other >= own).long()                          # never the sample itself
    not_next = torch.rand(B, device=device, generator=generator) < 0.5
    partner = torch.where(not_next, other, own)
    paired = torch.cat([patches[:, :n_a], patches[partner, n_a:]], dim=1)
    return paired, not_next.long(), partner


def bert_init(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: weights N(0, std), biases 0, LayerNorm gain 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            nn.init.normal_(m.in_proj_weight, std=std)
            nn.init.zeros_(m.in_proj_bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BERT(RepresentationModel):
    def __init__(self, in_channels: int, seq_len: int | None = None, patch_len: int = 12,
                 d_model: int = 128, depth: int = 4, num_heads: int = 4, d_ff: int = 512,
                 dropout: float = 0.1, mask_ratio: float = 0.15, mask_prob: float = 0.8,
                 random_prob: float = 0.1, max_patches: int = 1024, encode_batch_size: int = 256):
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"model.mask_ratio must be in (0, 1), got {mask_ratio}")
        if mask_prob < 0 or random_prob < 0 or mask_prob + random_prob > 1:
            raise ValueError(f"model.mask_prob={mask_prob} and model.random_prob={random_prob} must "
                             "be non-negative and sum to at most 1 (BERT: 0.8 and 0.1)")
        self.in_channels, self.patch_len = in_channels, patch_len
        self.mask_ratio, self.mask_prob, self.random_prob = mask_ratio, mask_prob, random_prob
        self.encode_batch_size = encode_batch_size
        if seq_len is not None:
            max_patches = max(max_patches, math.ceil(seq_len / patch_len))
        self.max_patches = max_patches
        patch_dim = patch_len * in_channels
        self.patch_embed = nn.Linear(patch_dim, d_model)               # BERT's word embedding
        self.cls_token = nn.Parameter(torch.zeros(d_model))
        self.sep_token = nn.Parameter(torch.zeros(d_model))
        self.mask_token = nn.Parameter(torch.zeros(d_model))
        self.position = nn.Embedding(max_patches + 3, d_model)        # + [CLS] and two [SEP]
        self.segment = nn.Embedding(2, d_model)                       # A = 0, B = 1
        self.embed_norm = nn.LayerNorm(d_model)
        self.embed_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout, activation="gelu",
                                           batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        # masked-patch head: BERT's transform (dense, GELU, LayerNorm), then patch values
        self.mlm_head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model),
                                      nn.Linear(d_model, patch_dim))
        self.pooler = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh())
        self.nsp_head = nn.Linear(d_model, 2)
        bert_init(self)
        for p in (self.cls_token, self.sep_token, self.mask_token):
            nn.init.normal_(p, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)
        nn.init.normal_(self.segment.weight, std=0.02)
        self.repr_dim = d_model

    # ---- tokens ---------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, C] (NaN = unobserved), optional bool mask [B, T] (True = keep) ->
        (patches [B, N, patch_len * C] with dropped steps zeroed and T zero-padded to
        N * patch_len, bool [B, N]: patches with at least one kept step)."""
        B, T, C = x.shape
        if C != self.in_channels:
            raise ValueError(f"BERT was built for {self.in_channels} channels, got x {tuple(x.shape)}")
        keep = ~torch.isnan(x).any(dim=-1)
        if mask is not None:
            keep = keep & mask.to(x.device).to(torch.bool)
        x = torch.nan_to_num(x, nan=0.0) * keep.unsqueeze(-1).to(x.dtype)
        pad = (-T) % self.patch_len
        x, keep = F.pad(x, (0, 0, 0, pad)), F.pad(keep, (0, pad))
        n = x.size(1) // self.patch_len
        if n > self.max_patches:
            raise ValueError(f"{n} patches exceed model.max_patches={self.max_patches}; raise it")
        return x.reshape(B, n, self.patch_len * C), keep.reshape(B, n, self.patch_len).any(-1)

    def _sequence(self, tokens: torch.Tensor, n_a: int) -> torch.Tensor:
        """Token embeddings [B, N, D] of A (the first n_a) and B -> the encoder's input
        ``[CLS] A [SEP] (B [SEP])`` with position and segment embeddings, LayerNorm, dropout."""
        B, N, D = tokens.shape
        cls, sep = self.cls_token.expand(B, 1, D), self.sep_token.expand(B, 1, D)
        parts = [cls, tokens[:, :n_a], sep]
        segments = [0] * (n_a + 2)
        if n_a < N:
            parts += [tokens[:, n_a:], sep]
            segments += [1] * (N - n_a + 1)
        seq = torch.cat(parts, dim=1)
        seg = torch.tensor(segments, device=tokens.device)
        seq = seq + self.position.weight[: seq.size(1)] + self.segment(seg)
        return self.embed_dropout(self.embed_norm(seq))

    def _encode_tokens(self, tokens: torch.Tensor, observed: torch.Tensor, n_a: int) -> torch.Tensor:
        """Final hidden states [B, L, D] of the sequence; unobserved patches are not attended."""
        B, N, _ = tokens.shape
        one = observed.new_ones(B, 1)
        keep = [one, observed[:, :n_a], one] + ([observed[:, n_a:], one] if n_a < N else [])
        padding = ~torch.cat(keep, dim=1)
        return self.encoder(self._sequence(tokens, n_a),
                            src_key_padding_mask=padding if padding.any() else None)

    @staticmethod
    def patch_states(h: torch.Tensor, n_a: int, n: int) -> torch.Tensor:
        """The states of the N patch tokens in ``[CLS] A [SEP] (B [SEP])``: [B, N, D]."""
        if n_a >= n:
            return h[:, 1:n + 1]
        return torch.cat([h[:, 1:n_a + 1], h[:, n_a + 2:n + 2]], dim=1)

    # ---- pretraining ----------------------------------------------------------------------
    def forward(self, batch: dict) -> dict:
        patches, observed = self.patchify(batch["x"])
        B, N, _ = patches.shape
        if N < 2:
            raise ValueError(f"next-segment prediction needs at least 2 patches; the series has {N} "
                             f"of model.patch_len={self.patch_len} steps: lower model.patch_len")
        n_a = N // 2
        patches, label, partner = next_segment_pairs(patches, n_a)
        observed = torch.cat([observed[:, :n_a], observed[partner, n_a:]], dim=1)
        tokens, action, _ = bert_masking(self.patch_embed(patches), self.mask_token, self.mask_ratio,
                                         self.mask_prob, self.random_prob, candidates=observed)
        h = self._encode_tokens(tokens, observed, n_a)
        return {"pred": self.mlm_head(self.patch_states(h, n_a, N)), "target": patches,
                "chosen": action > 0, "nsp_logits": self.nsp_head(self.pooler(h[:, 0])),
                "nsp_label": label}

    # ---- representation contract ------------------------------------------------------------
    def _single_segment(self, x: torch.Tensor, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        patches, observed = self.patchify(x, mask if torch.is_tensor(mask) else None)
        N = patches.size(1)
        return self._encode_tokens(self.patch_embed(patches), observed, N), observed

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """``[CLS] patches [SEP]``, one segment, no masking: [B, D] pooled over the observed
        patches, or [B, N, D] per patch with pooling=None."""
        h, observed = self._single_segment(x, mask)
        N = observed.size(1)
        return pool(self.patch_states(h, N, N), pooling, None if pooling is None else observed)

    def cls_state(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        """The final [CLS] state [B, D] of the single-segment input (BERT's sequence vector)."""
        return self._single_segment(x, mask)[0][:, 0]
