"""wav2vec 2.0: the Gumbel quantiser's bounds and annealing, the distractors, the contrastive
loss against a direct formula and the span mask."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from layers.quantizer import GumbelVectorQuantizer
from models.ssl.wav2vec2 import cover_spans, span_mask
from utils.losses.wav2vec2 import sample_distractors, wav2vec2_contrastive


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- quantiser
def test_quantiser_shapes_perplexity_and_diversity_bounds():
    torch.manual_seed(0)
    G, V = 2, 5
    q = GumbelVectorQuantizer(in_dim=4, code_dim=6, num_groups=G, num_vars=V)
    z = torch.randn(3, 7, 4)
    out = q(z)
    assert out["q"].shape == (3, 7, 6) and out["indices"].shape == (3, 7, G)
    assert G <= out["perplexity"].item() <= G * V
    assert 0.0 <= out["diversity_loss"].item() <= 1 - 1 / V
    # uniform softmax: perplexity G V, diversity 0
    with torch.no_grad():
        q.weight_proj.weight.zero_()
        q.weight_proj.bias.zero_()
    out = q(z)
    assert out["perplexity"].item() == pytest.approx(G * V, rel=1e-4)
    assert out["diversity_loss"].item() == pytest.approx(0.0, abs=1e-4)
    # every step on entry 0 of each group: perplexity G, diversity 1 - 1/V
    with torch.no_grad():
        q.weight_proj.bias.copy_(torch.tensor([50.0, 0, 0, 0, 0] * G))
    out = q(z)
    assert out["perplexity"].item() == pytest.approx(G, rel=1e-3)
    assert out["diversity_loss"].item() == pytest.approx(1 - 1 / V, rel=1e-3)
    # in eval mode q is the concatenation of the argmax entries of each group
    q.eval()
    out = q(z)
    e0 = q.codebook[0], q.codebook[V]
    assert torch.allclose(out["q"][0, 0], torch.cat(e0))


def test_quantiser_temperature_anneals_and_gradient_is_straight_through():
    q = GumbelVectorQuantizer(4, 4, 2, 8, max_temp=2.0, min_temp=0.5, temp_decay=0.999)
    q.set_step(0)
    assert q.temperature.item() == pytest.approx(2.0)
    q.set_step(100)
    assert q.temperature.item() == pytest.approx(2.0 * 0.999 ** 100, rel=1e-6)
    q.set_step(10**6)
    assert q.temperature.item() == pytest.approx(0.5)
    q.train()
    q(torch.randn(2, 3, 4))["q"].sum().backward()
    assert q.weight_proj.weight.grad is not None and q.weight_proj.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- wav2vec 2.0
def test_wav2vec2_distractors_come_from_other_masked_steps():
    idx = sample_distractors(3, 5, 50, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (3, 5, 50) and idx.min() >= 0 and idx.max() <= 4
    own = torch.arange(5).view(1, 5, 1)
    assert not (idx == own).any()


def test_wav2vec2_contrastive_equals_direct_formula():
    g = torch.Generator().manual_seed(3)
    c, qp, qn = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, 2, 3, generator=g)
    qn[0, 1] = qp[0]                                  # a distractor equal to the positive is ignored
    total = 0.0
    for i in range(4):
        cands = [qp[i]] + [qn[i, k] for k in range(2) if not (i == 0 and k == 1)]
        e = [math.exp(float(F.cosine_similarity(c[i], q, dim=0)) / 0.1) for q in cands]
        total += -math.log(e[0] / sum(e))
    loss, _ = wav2vec2_contrastive(c, qp, qn, temperature=0.1)
    assert loss.item() == pytest.approx(total / 4, rel=1e-5)


def test_cover_spans_marks_span_steps_from_every_start():
    torch.manual_seed(0)
    for starts, span in [(10, 3), (6, 1), (7, 7)]:
        is_start = torch.rand(5, starts) < 0.3
        want = torch.zeros(5, starts + span - 1, dtype=torch.bool)
        for b, j in is_start.nonzero().tolist():
            want[b, j:j + span] = True
        assert torch.equal(cover_spans(is_start, span), want)


def test_wav2vec2_span_mask_has_equal_counts_and_paper_density():
    torch.manual_seed(0)
    m = span_mask(16, 400, mask_prob=0.065, span=10)
    counts = m.sum(1)
    assert (counts == counts[0]).all()
    assert 0.3 < counts[0].item() / 400 < 0.6       # ~49 % masked in the paper's setting
    # spans of one step never overlap: every row masks exactly int(p T' + U) = 20 steps
    assert (span_mask(500, 40, mask_prob=0.5, span=1).sum(1) == 20).all()
