"""CPC, TF-C, COMET, MAE and wav2vec 2.0: each loss against a hand-computed tiny case, the
quantiser's bounds, and a few pretraining steps on real MIT-BIH beats where the loss falls."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layers.quantizer import GumbelVectorQuantizer
from layers.tfc_layers import frequency_bank, magnitude_spectrum
from models.ssl.comet import COMET
from models.ssl.cpc import CPC
from models.ssl.mae import MAE
from models.ssl.tfc import TFC
from models.ssl.wav2vec2 import span_mask
from utils.losses.simclr import nt_xent
from utils.losses.comet import COMETLoss, id_contrastive_loss, same_id_pairs
from utils.losses.cpc import cpc_info_nce
from utils.losses.mae import masked_patch_mse
from utils.losses.tfc import TFCLoss, tfc_consistency
from utils.losses.wav2vec2 import sample_distractors, wav2vec2_contrastive


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread
    (two threads spin-wait against the other processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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

    cfg = compose_cfg(["model=comet", "data=ucr", "data.name=ECG200", *TINY["comet"],
                       f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
                       "trainer.device=cpu", "trainer.progress=false", "trainer.max_steps=4",
                       "trainer.batch_size=32"])
    seed_everything(0)
    exp = Exp_Pretrain(cfg, tmp_path)
    assert "patient_id" not in exp.data.splits["train"].arrays and exp._groups is None
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


def test_wav2vec2_span_mask_has_equal_counts_and_paper_density():
    torch.manual_seed(0)
    m = span_mask(16, 400, mask_prob=0.065, span=10)
    counts = m.sum(1)
    assert (counts == counts[0]).all()
    assert 0.3 < counts[0].item() / 400 < 0.6       # ~49 % masked in the paper's setting


# ---------------------------------------------------------------------------- real ECG
SMALL_ECG = ["data=ecg", "data.ds1_records=[101,118]", "data.val_records=[118]",
             "data.ds2_records=[100]"]
TINY = {
    "cpc": ["model.enc_dim=32", "model.context_dim=32"],
    "tfc": ["model.proj_hidden=64", "model.proj_dim=32"],
    "mae": ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.decoder_dim=16",
            "model.decoder_depth=1", "model.decoder_heads=2"],
    "wav2vec2": ["model.conv_layers=[[32,10,2],[32,3,2],[32,3,2]]", "model.d_model=32",
                 "model.depth=2", "model.num_heads=2", "model.ffn_dim=64", "model.final_dim=16",
                 "model.num_vars=32", "model.conv_pos=16", "model.conv_pos_groups=4",
                 "loss.num_negatives=20"],
    "comet": ["model.output_dims=32", "model.hidden_dims=16", "model.depth=3"],
}
STEPS = 30


def _fixed_loss(model, criterion, batch) -> float:
    """Mean loss over three fixed random draws (augmentations, masks) on one batch."""
    values = []
    with torch.no_grad():
        for seed in range(3):
            torch.manual_seed(seed)
            out = criterion(model(batch), batch)
            values.append(float(out["loss"] if isinstance(out, dict) else out))
    return float(np.mean(values))


def _cfg(name, data_dir, cache_dir):
    from utils.compose import compose_cfg
    return compose_cfg([f"model={name}", *SMALL_ECG, *TINY[name], f"paths.data_dir={data_dir}",
                        f"paths.cache_dir={cache_dir}", "trainer.device=cpu",
                        "trainer.progress=false", "trainer.max_epochs=1",
                        f"trainer.max_steps={STEPS}", "trainer.batch_size=32", "optimizer.lr=1e-3"])


@pytest.mark.parametrize("name", ["cpc", "tfc", "mae", "wav2vec2"])
def test_pretrains_on_real_ecg_and_loss_falls(name, data_dir, cache_dir, tmp_path):
    from exp.exp_pretrain import Exp_Pretrain
    from utils.seed import seed_everything

    cfg = _cfg(name, data_dir, cache_dir)
    seed_everything(0)
    exp = Exp_Pretrain(cfg, tmp_path)
    batch = exp.data.splits["train"].__getitems__(list(range(0, 2048, 16)))   # 128 beats, 2 records
    before = _fixed_loss(exp.model.train(), exp.criterion, batch)
    exp.train()
    assert exp.state["step"] == STEPS
    after = _fixed_loss(exp.model.train(), exp.criterion, batch)
    print(f"{name}: loss {before:.4f} -> {after:.4f}")
    assert after < before - 0.02 * abs(before), f"{name}: loss {before:.4f} -> {after:.4f}"
    reps = exp.model.encode(batch["x"], pooling="max")
    assert reps.shape == (128, exp.model.repr_dim) and torch.isfinite(reps).all()


def test_comet_pretrains_on_real_ecg_patients_and_loss_falls(data_dir, cache_dir):
    """COMET needs patient_id/index in the batch, which the data family gives; driven by a
    plain loop over batches of consecutive beats (the official trial-grouped batches)."""
    from data_provider.base import ArrayDataset
    from data_provider.data_factory import data_provider
    from omegaconf import open_dict
    from utils.instantiate import build

    cfg = _cfg("comet", data_dir, cache_dir)
    with open_dict(cfg):
        cfg.task.name = "pretrain"
    splits = data_provider(cfg).splits          # unlabelled beats of record 101 (train), 118 (val)
    assert {"patient_id", "index"} <= set(splits["train"].arrays)
    train = ArrayDataset(**{k: torch.cat([splits["train"].arrays[k], splits["val"].arrays[k]])
                            for k in ("x", "patient_id", "index")})
    torch.manual_seed(0)
    model = build(cfg.model, in_channels=1)
    criterion = build(cfg.loss)
    n = len(train)
    eval_batch = train.__getitems__([s + j for s in (0, 400, 1200, 2000, 2600, 3400) for j in range(10)])
    assert len(set(eval_batch["patient_id"].tolist())) == 2
    before = _fixed_loss(model.train(), criterion, eval_batch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(15):
        starts = torch.randint(0, n - 10, (4,), generator=gen)
        batch = train.__getitems__([int(s) + j for s in starts for j in range(10)])
        loss = criterion(model(batch), batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.on_train_step_end(step)
    after = _fixed_loss(model.train(), criterion, eval_batch)
    print(f"comet: loss {before:.4f} -> {after:.4f}")
    assert after < before - 0.02 * abs(before), f"comet: loss {before:.4f} -> {after:.4f}"
    assert model.encode(eval_batch["x"]).shape == (60, 32)
