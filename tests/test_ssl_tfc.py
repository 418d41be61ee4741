"""TF-C: the consistency term and total loss, the frequency view and perturbation, the views and
the representation."""
from __future__ import annotations

import math

import pytest
import torch

from layers.tfc_layers import frequency_bank, magnitude_spectrum
from models.ssl.tfc import TFC
from utils.losses.simclr import nt_xent
from utils.losses.tfc import TFCLoss, tfc_consistency


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- TF-C
def test_tfc_consistency_term_and_total_loss():
    s_tf, pairs = torch.tensor(1.0), [torch.tensor(2.0), torch.tensor(3.0), torch.tensor(0.5)]
    # terms (1 - 2 + 1) = 0, (1 - 3 + 1) = -1, (1 - 0.5 + 1) = 1.5
    assert tfc_consistency(s_tf, pairs, 1.0, hinge=False).item() == pytest.approx(0.5)
    assert tfc_consistency(s_tf, pairs, 1.0, hinge=True).item() == pytest.approx(1.5)
    g = torch.Generator().manual_seed(1)
    out = {k: torch.randn(6, 5, generator=g) for k in
           ("h_t", "h_t_aug", "h_f", "h_f_aug", "z_t", "z_t_aug", "z_f", "z_f_aug")}
    d = lambda a, b: nt_xent(out[a], out[b], 0.2).item()
    lc = sum(max(0.0, d("z_t", "z_f") - d(a, b) + 1.0) for a, b in
             (("z_t", "z_f_aug"), ("z_t_aug", "z_f"), ("z_t_aug", "z_f_aug")))
    expected = 0.2 * (d("h_t", "h_t_aug") + d("h_f", "h_f_aug")) + 0.8 * lc
    got = TFCLoss(temperature=0.2, lam=0.2, delta=1.0)(out)
    assert got["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert got["consistency"].item() == pytest.approx(lc, rel=1e-5)


def test_tfc_frequency_view_and_perturbation():
    torch.manual_seed(0)
    t = torch.arange(64, dtype=torch.float32)
    x = torch.sin(2 * math.pi * 4 * t / 64).view(1, 64, 1)
    xf = magnitude_spectrum(x)
    assert xf.shape == x.shape and xf[0, 4, 0].item() == pytest.approx(32.0, rel=1e-4)
    aug = frequency_bank(xf.repeat(200, 1, 1), ratio=0.1)
    changed = (aug != xf).float().mean().item()
    assert 0.05 < changed < 0.35                                    # ~10 % removed + ~10 % added
    assert (aug <= xf + 0.1 * 32.0 + 1e-4).all()                    # additions <= 0.1 x peak


def test_tfc_views_and_representation():
    torch.manual_seed(0)
    model = TFC(1, seq_len=64)
    out = model({"x": torch.randn(4, 80, 1)})                         # cut to 64 steps
    assert out["h_t"].shape == (4, 64) and out["z_f_aug"].shape == (4, 128)
    assert model.encode(torch.randn(3, 50, 1)).shape == (3, 256)     # zero-padded to 64
    assert model.make_head(3)(torch.randn(2, 256)).shape == (2, 3)
