"""CPC: the InfoNCE against a direct formula, a causal context and predictions K steps ahead."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.ssl.cpc import CPC
from utils.losses.cpc import cpc_info_nce


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- CPC
def test_cpc_info_nce_equals_direct_formula():
    g = torch.Generator().manual_seed(0)
    B, T, K, D = 3, 4, 2, 2
    pred, z = torch.randn(B, T, K, D, generator=g), torch.randn(B, T, D, generator=g)
    total, n, hits = 0.0, 0, 0
    for k in range(1, K + 1):
        for t in range(T - k):
            for b in range(B):
                # candidates: every step of every sequence; the positive is z[b, t+k]
                scores = [math.exp(float(pred[b, t, k - 1] @ z[c, u])) for c in range(B) for u in range(T)]
                pos = b * T + t + k
                total += -math.log(scores[pos] / sum(scores))
                hits += int(np.argmax(scores) == pos)
                n += 1
    loss, acc = cpc_info_nce(pred, z)
    assert loss.item() == pytest.approx(total / n, rel=1e-5)
    assert acc.item() == pytest.approx(hits / n)


def test_cpc_context_is_causal_and_predictions_cover_k_steps():
    torch.manual_seed(0)
    model = CPC(1, enc_dim=8, context_dim=6, strides=(4, 2, 2), kernel_sizes=(8, 4, 4), pred_steps=3)
    x = torch.randn(2, 256, 1)
    out = model({"x": x})
    assert out["z"].shape == (2, 16, 8) and out["pred"].shape == (2, 16, 3, 8)
    x2 = x.clone()
    x2[:, 160:] += 5.0                        # change only the end of the input
    c1, c2 = model.encode(x, pooling=None), model.encode(x2, pooling=None)
    assert torch.allclose(c1[:, :8], c2[:, :8])  # earlier contexts do not see the future
    assert not torch.allclose(c1[:, -1], c2[:, -1])
