"""utils/losses/ (simclr, moco, byol, simsiam, dino, instdisc, hybrid) against direct (loop) formulas on tiny hand-sized cases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from utils.losses.byol import BYOLLoss, normalized_mse
from utils.losses.dino import DINOLoss, dino_loss, updated_center
from utils.losses.hybrid import HybridLoss, supervised_contrastive
from utils.losses.instdisc import InstDiscLoss, nce_loss
from utils.losses.moco import MoCoLoss, info_nce_queue
from utils.losses.simclr import NTXentLoss, nt_xent
from utils.losses.simsiam import SimSiamLoss, negative_cosine


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_nt_xent_equals_direct_formula_and_is_symmetric():
    z1, z2 = torch.randn(3, 4, generator=g(0)), torch.randn(3, 4, generator=g(1))
    t = 0.5
    z = torch.cat([z1, z2])
    total = 0.0
    for i in range(6):
        pos = (i + 3) % 6
        denom = sum(math.exp(cos(z[i], z[k]) / t) for k in range(6) if k != i)
        total += -math.log(math.exp(cos(z[i], z[pos]) / t) / denom)
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / 6, rel=1e-5)
    assert nt_xent(z2, z1, t).item() == pytest.approx(total / 6, rel=1e-5)
    assert NTXentLoss(t)({"z1": z1, "z2": z2}, {}).item() == pytest.approx(total / 6, rel=1e-5)
    # identical views of orthogonal series: the loss is the log of the negatives' mass only
    e = torch.eye(3)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 4))
    assert nt_xent(e, e, t).item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_with_queue_equals_direct_formula():
    q, k, queue = torch.randn(2, 3, generator=g(0)), torch.randn(2, 3, generator=g(1)), torch.randn(4, 3, generator=g(2))
    t = 0.2
    total = 0.0
    for i in range(2):
        logits = [cos(q[i], k[i]) / t] + [cos(q[i], queue[j]) / t for j in range(4)]
        total += -logits[0] + math.log(sum(math.exp(v) for v in logits))
    out = MoCoLoss(t)({"q": q, "k": k, "queue": queue}, {})
    assert out.item() == pytest.approx(total / 2, rel=1e-5)
    assert info_nce_queue(q, k, queue, t).item() == pytest.approx(total / 2, rel=1e-5)


def test_byol_normalised_mse_and_no_gradient_to_the_target():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z = torch.tensor([[1.0, 1.0], [0.0, -3.0]], requires_grad=True)
    # 2 - 2 cos: cos = 1/sqrt2 and -1
    assert normalized_mse(p, z).item() == pytest.approx(((2 - 2 / math.sqrt(2)) + 4) / 2, rel=1e-6)
    normalized_mse(p, z).backward()
    assert p.grad is not None and z.grad is None
    out = {"p1": p.detach(), "p2": p.detach(), "t1": z.detach(), "t2": z.detach()}
    assert BYOLLoss()(out, {}).item() == pytest.approx(2 * (((2 - 2 / math.sqrt(2)) + 4) / 2), rel=1e-6)


def test_simsiam_stop_gradient_and_value():
    p = torch.tensor([[3.0, 4.0]], requires_grad=True)
    z = torch.tensor([[4.0, 3.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx(-24 / 25)
    loss.backward()
    assert z.grad is None and p.grad is not None
    out = SimSiamLoss()({"p1": p, "p2": z, "z1": p, "z2": z}, {})
    assert out.item() == pytest.approx(-24 / 25)


def test_dino_loss_equals_direct_formula_and_centre_update():
    V, G, B, K = 3, 2, 2, 4
    s, t = torch.randn(V, B, K, generator=g(0)), torch.randn(G, B, K, generator=g(1))
    c = torch.randn(1, K, generator=g(2)) * 0.1
    ts, tt = 0.1, 0.04
    total, n = 0.0, 0
    for iq in range(G):
        for v in range(V):
            if v == iq:
                continue
            for b in range(B):
                tp = F.softmax((t[iq, b] - c[0]) / tt, dim=0)
                sl = F.log_softmax(s[v, b] / ts, dim=0)
                total += float(-(tp * sl).sum()) / B
            n += 1
    assert n == 4                                     # 2 teacher views x 2 other student views
    assert dino_loss(s, t, c, ts, tt).item() == pytest.approx(total / n, rel=1e-5)
    parts = DINOLoss(ts, tt)({"student": s, "teacher": t, "center": c}, {})
    assert parts["loss"].item() == pytest.approx(total / n, rel=1e-5)
    tp = F.softmax((t - c) / tt, dim=-1)
    entropy = float(-(tp * tp.log()).sum(-1).mean())
    assert parts["teacher_entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert parts["kl"].item() == pytest.approx(total / n - entropy, rel=1e-4, abs=1e-6)
    assert parts["kl"].item() >= 0
    new_c = updated_center(c, t, 0.9)
    assert torch.allclose(new_c, 0.9 * c + 0.1 * t.reshape(-1, K).mean(0, keepdim=True))


def test_dino_sharpening_and_centring():
    """Sharper teacher -> lower-entropy targets; centring removes a constant teacher offset."""
    s = torch.zeros(2, 1, 3)
    t = torch.tensor([[[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]]])
    sharp = dino_loss(s, t, torch.zeros(1, 3), 0.1, 0.04)
    assert sharp.item() == pytest.approx(math.log(3), rel=1e-5)   # uniform student: log K for any target
    st = torch.tensor([[[5.0, 0.0, 0.0]], [[5.0, 0.0, 0.0]]])
    assert dino_loss(st, t, torch.zeros(1, 3), 0.1, 0.04) < dino_loss(st, t, torch.zeros(1, 3), 0.1, 1.0)
    centred = dino_loss(st, t, torch.tensor([[1.0, 0.0, 0.0]]), 0.1, 0.04)
    uniform_target = (-F.log_softmax(st[0, 0] / 0.1, 0)).mean()
    assert centred.item() == pytest.approx(uniform_target.item(), rel=1e-5)


def test_nce_loss_equals_direct_formula():
    pos, noise = torch.tensor([2.0, 0.5]), torch.tensor([[0.1, -0.3, 1.0], [0.0, 0.2, -1.0]])
    log_z, n = 1.3, 10
    m, pn = 3, 1 / 10
    total = 0.0
    for b in range(2):
        p = math.exp(pos[b] - log_z)
        total -= math.log(p / (p + m * pn))
        for j in range(3):
            q = math.exp(noise[b, j] - log_z)
            total -= math.log(1 - q / (q + m * pn))
    out = InstDiscLoss()({"pos_logit": pos, "noise_logits": noise, "log_z": torch.tensor(log_z), "n_data": n}, {})
    assert out.item() == pytest.approx(total / 2, rel=1e-5)
    assert nce_loss(pos, noise, log_z, n).item() == pytest.approx(total / 2, rel=1e-5)
    soft = InstDiscLoss()({"logits": noise, "target": torch.tensor([2, 1])}, {})
    assert soft.item() == pytest.approx(F.cross_entropy(noise, torch.tensor([2, 1])).item())


def test_supervised_contrastive_direct_and_reduces_to_nt_xent():
    z = torch.randn(4, 3, generator=g(5))
    y = torch.tensor([0, 0, 1, 2])                   # anchors 0 and 1 have one positive each
    t = 0.1
    total = 0.0
    for i, p in ((0, 1), (1, 0)):
        denom = sum(math.exp(cos(z[i], z[a]) / t) for a in range(4) if a != i)
        total += -math.log(math.exp(cos(z[i], z[p]) / t) / denom)
    assert supervised_contrastive(z, y, t).item() == pytest.approx(total / 2, rel=1e-5)
    z1, z2 = torch.randn(3, 5, generator=g(1)), torch.randn(3, 5, generator=g(2))
    ids = torch.arange(3)
    assert supervised_contrastive(torch.cat([z1, z2]), torch.cat([ids, ids]), 0.5).item() == \
        pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-5)
    none = supervised_contrastive(z, torch.arange(4), t)
    assert none.item() == 0.0


def test_hybrid_loss_parts():
    z1, z2 = torch.randn(4, 3, generator=g(0)), torch.randn(4, 3, generator=g(1))
    logits = torch.randn(8, 2, generator=g(2))
    loss = HybridLoss(temperature=0.2)
    unlabelled = loss({"z1": z1, "z2": z2, "logits": logits, "y": torch.full((4,), -1)}, {})
    assert unlabelled["loss"].item() == pytest.approx(nt_xent(z1, z2, 0.2).item(), rel=1e-6)
    y = torch.tensor([0, 1, -1, 0])
    out = loss({"z1": z1, "z2": z2, "logits": logits, "y": y}, {})
    lab = torch.tensor([True, True, False, True])
    ce = F.cross_entropy(logits[torch.cat([lab, lab])], torch.cat([y[lab], y[lab]]))
    sup = supervised_contrastive(torch.cat([z1[lab], z2[lab]]), torch.cat([y[lab], y[lab]]), 0.2)
    assert out["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["supcon"].item() == pytest.approx(sup.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((out["unsup"] + sup + ce).item(), rel=1e-5)
