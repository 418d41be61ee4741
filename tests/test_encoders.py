"""The shared encoders of the self-supervised methods (layers/encoders.py) and their pooling."""
from __future__ import annotations

import pytest
import torch

from layers.encoders import build_encoder, pool

# ---------------------------------------------------------------------------- encoders
@pytest.mark.parametrize("name,kw", [("ts2vec", dict(hidden_dims=8, depth=2)),
                                     ("resnet1d", dict(widths=[8, 16])),
                                     ("transformer", dict(n_heads=2, n_layers=1, patch_len=4))])
def test_encoders_map_series_to_per_step_representations(name, kw):
    torch.manual_seed(0)
    enc = build_encoder(name, 3, 12, **kw).eval()
    x = torch.randn(2, 30, 3)
    h = enc(x)
    assert h.shape == (2, 30, 12) and enc.repr_dim == 12
    assert enc(torch.randn(2, 13, 3)).shape == (2, 13, 12)          # any length (local crops)
    x_nan = x.clone()
    x_nan[:, -5:] = float("nan")
    assert torch.isfinite(enc(x_nan)).all()
    with pytest.raises(ValueError, match="choose one of"):
        build_encoder("lstm", 3, 12)


def test_pooling_helpers():
    h = torch.tensor([[[1.0], [5.0], [3.0]]])
    keep = torch.tensor([[True, False, True]])
    assert pool(h, "max").item() == 5 and pool(h, "mean").item() == 3 and pool(h, "last").item() == 3
    assert pool(h, "max", keep).item() == 3 and pool(h, "mean", keep).item() == 2
    assert pool(h, None).shape == (1, 3, 1)
