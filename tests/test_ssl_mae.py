"""MAE: the loss counts the masked patches only; the encoder sees the visible ones only."""
from __future__ import annotations

import math

import pytest
import torch

from models.ssl.mae import MAE
from utils.losses.mae import masked_patch_mse


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- MAE
def test_mae_loss_counts_masked_patches_only():
    target = torch.zeros(1, 4, 3)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    pred = torch.zeros(1, 4, 3)
    pred[0, 1] = 7.0                                      # error on a visible patch only
    pred[0, 3] = -2.0
    assert masked_patch_mse(pred, target, mask, norm_target=False).item() == 0.0
    pred[0, 0] = torch.tensor([1.0, 2.0, 3.0])            # error on a masked patch
    expected = (1 + 4 + 9) / 3 / 2                        # its MSE, averaged over 2 masked patches
    assert masked_patch_mse(pred, target, mask, norm_target=False).item() == pytest.approx(expected)
    # normalised targets: a patch (1, 2, 3) becomes (-1.2247, 0, 1.2247)
    t = torch.tensor([[[1.0, 2.0, 3.0]]])
    p = torch.tensor([[[-math.sqrt(1.5), 0.0, math.sqrt(1.5)]]])
    assert masked_patch_mse(p, t, torch.ones(1, 1)).item() == pytest.approx(0.0, abs=1e-5)


def test_mae_encoder_sees_only_visible_patches():
    torch.manual_seed(0)
    model = MAE(1, 96, patch_len=8, mask_ratio=0.75, embed_dim=16, depth=1, num_heads=2,
                decoder_dim=8, decoder_depth=1, decoder_heads=2)
    seen = []
    model.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    out = model({"x": torch.randn(5, 96, 1)})
    assert seen[-1] == (5, 3, 16)                          # 12 patches, 25 % visible
    assert out["mask"].sum(1).tolist() == [9.0] * 5
    assert out["pred"].shape == out["target"].shape == (5, 12, 8)
    assert model.encode(torch.randn(4, 96, 1), pooling=None).shape == (4, 12, 16)
