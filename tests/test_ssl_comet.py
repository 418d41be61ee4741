"""COMET: patient/trial positives, the id loss against a direct formula, trial ids from
consecutive windows, levels without ids left out."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.ssl.comet import COMET
from utils.losses.comet import COMETLoss, id_contrastive_loss, same_id_pairs


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


COMET_TINY = ["model.output_dims=32", "model.hidden_dims=16", "model.depth=3"]


# ---------------------------------------------------------------------------- COMET
def test_comet_positives_are_exactly_same_patient_pairs():
    ids = torch.tensor([201, 100, 201, 100, 7])
    pos = same_id_pairs(ids)
    expected = {(0, 2), (2, 0), (1, 3), (3, 1)}
    assert {tuple(p) for p in pos.nonzero().tolist()} == expected


def test_comet_id_loss_equals_direct_formula():
    z1 = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    z2 = torch.tensor([[0.8, 0.6], [1.0, 0.0], [-1.0, 0.0]])
    ids = torch.tensor([5, 5, 9])
    tau = 0.5
    s = [[float(F.cosine_similarity(z1[i], z2[j], dim=0)) / tau for j in range(3)] for i in range(3)]
    upper = -math.log(math.exp(s[0][1]) / sum(math.exp(v) for v in s[0]))           # pair (0, 1), row 0
    lower = -math.log(math.exp(s[1][0]) / sum(math.exp(s[k][0]) for k in range(3)))  # pair (1, 0), column 0
    got = id_contrastive_loss(z1, z2, ids, temperature=tau)
    assert got.item() == pytest.approx((upper + lower) / 2, rel=1e-5)
    # no shared id in the batch: no patient term
    assert id_contrastive_loss(z1, z2, torch.tensor([1, 2, 3])).item() == 0.0


def test_comet_trial_ids_from_consecutive_windows_and_level_weights():
    torch.manual_seed(0)
    model = COMET(1, output_dims=8, hidden_dims=4, depth=2, trial_windows=3)
    batch = {"x": torch.randn(6, 40, 1), "patient_id": torch.tensor([1, 1, 1, 1, 2, 2]),
             "index": torch.tensor([0, 2, 3, 5, 6, 7])}
    out = model(batch)
    trials = out["trial_id"].tolist()
    assert trials[0] == trials[1] != trials[2] == trials[3] and trials[4] == trials[5] != trials[3]
    parts = COMETLoss(weights=[1.0, 0.0, 0.0, 0.0])(out, batch)
    assert set(parts) == {"loss", "patient"} and parts["loss"].item() == pytest.approx(parts["patient"].item())
    # without patient ids neither the patient level nor trials derived from them exist
    bare = model({"x": batch["x"], "index": batch["index"]})
    assert set(bare) == {"sample_z1", "sample_z2", "observation_z1", "observation_z2"}
    with pytest.raises(ValueError, match="no level"):
        COMETLoss(weights=[1.0, 0.0, 0.0, 0.0])(bare, batch)
    # given trial ids, the trial level trains without patients
    assert "trial_z1" in model({"x": batch["x"], "trial_id": torch.tensor([0, 0, 1, 1, 2, 2])})
    with pytest.raises(ValueError, match="none of model.levels"):
        COMET(1, output_dims=8, hidden_dims=4, depth=2, levels=["patient"])({"x": batch["x"]})


def test_comet_loss_without_patient_level_drops_its_weight():
    """A missing patient level (no "patient_*" outputs) gives exactly the full loss with the
    patient weight set to 0 (the official factor 0), i.e. 0.25 x (trial + sample + observation)
    of the full loss's own parts; the patient term is absent."""
    torch.manual_seed(0)
    model = COMET(1, output_dims=8, hidden_dims=4, depth=2, trial_windows=2)
    batch = {"x": torch.randn(6, 24, 1), "patient_id": torch.tensor([1, 1, 1, 2, 2, 2]),
             "index": torch.tensor([0, 1, 2, 3, 4, 5])}
    out = model(batch)
    full = COMETLoss()(out, batch)
    without = {k: v for k, v in out.items() if not k.startswith("patient")}
    parts = COMETLoss()(without, batch)
    zero = COMETLoss(weights=[0.0, 0.25, 0.25, 0.25])(out, batch)
    assert set(parts) == set(zero) == {"loss", "trial", "sample", "observation"}
    assert full["patient"].item() > 0
    hand = 0.25 * (full["trial"] + full["sample"] + full["observation"]).item()
    assert parts["loss"].item() == pytest.approx(hand, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(zero["loss"].item(), rel=1e-6)
    assert full["loss"].item() == pytest.approx(hand + 0.25 * full["patient"].item(), rel=1e-6)


def test_comet_pretrains_on_ecg200_without_patient_ids(data_dir, cache_dir, tmp_path, caplog):
    """UCR sets carry no patient or trial ids: COMET trains the sample and observation levels
    (a warning names each missing level once), the loss is finite and has no patient term."""
    import logging

    from exp.exp_pretrain import Exp_Pretrain
    from utils.compose import compose_cfg
    from utils.seed import seed_everything

    cfg = compose_cfg(["model=comet", "data=ucr", "data.name=ECG200", *COMET_TINY,
                       f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
                       "trainer.device=cpu", "trainer.progress=false", "trainer.max_steps=4",
                       "trainer.batch_size=32"])
    seed_everything(0)
    exp = Exp_Pretrain(cfg, tmp_path)
    assert "patient_id" not in exp.data.splits["train"].arrays and exp.loaders.groups is None
    seen, criterion = [], exp.criterion

    def recording(outputs, batch):
        parts = criterion(outputs, batch)
        seen.append({k: float(v.detach()) for k, v in parts.items()})
        return parts

    exp.criterion = recording
    with caplog.at_level(logging.WARNING, logger="models.ssl.comet"):
        exp.train()
    assert exp.state["step"] == 4 and len(seen) >= 4
    for parts in seen:
        assert set(parts) == {"loss", "sample", "observation"}          # no patient, no trial term
        assert np.isfinite(list(parts.values())).all()
        assert parts["loss"] == pytest.approx(0.25 * (parts["sample"] + parts["observation"]), rel=1e-5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("patient level is left out" in w for w in warnings) == 1
    assert sum("trial level is left out" in w for w in warnings) == 1
    assert any("patient_id" in w for w in warnings)
    reps = exp.model.encode(exp.data.splits["train"].arrays["x"][:10].numpy())
    assert reps.shape == (10, 32) and np.isfinite(np.asarray(reps)).all()
