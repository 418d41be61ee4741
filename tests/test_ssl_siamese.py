"""SimCLR, MoCo, BYOL, SimSiam, DINO, instance discrimination and the hybrid: state updates
(EMA, queue, centre, memory bank), stop-gradients, the representation contract, and a few
pretraining steps on real ECG (UCR ECG200) where the loss falls."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data_provider.pretraining import semi_supervised_labels
from models.ssl import BYOL, DINO, Hybrid, InstDisc, MoCo, SimCLR, SimSiam
from models.ssl.base import cosine_momentum
from utils.losses.byol import BYOLLoss
from utils.losses.dino import DINOLoss
from utils.losses.hybrid import HybridLoss
from utils.losses.instdisc import InstDiscLoss
from utils.losses.moco import MoCoLoss
from utils.losses.simclr import NTXentLoss
from utils.losses.simsiam import SimSiamLoss
from tests.helpers import require_ucr

TINY = dict(encoder="ts2vec", repr_dim=16, encoder_kwargs=dict(hidden_dims=8, depth=2))
# the zoo's default encoder (conf/model/*.yaml), narrow
TINY_RESNET = dict(encoder="resnet1d", repr_dim=16, encoder_kwargs=dict(widths=[16, 16]))
AUG = [{"name": "crop_resize", "scale": [0.5, 1.0]}, {"name": "scaling", "sigma": 0.1},
       {"name": "jitter", "sigma": 0.03}]


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def step(model, loss_fn, batch, opt, k, part: str = "loss"):
    out = model(batch)
    loss = loss_fn(out, batch)
    parts = loss if isinstance(loss, dict) else {"loss": loss}
    opt.zero_grad()
    parts["loss"].backward()
    opt.step()
    model.after_optimizer_step(k)
    return float(parts[part].detach())


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------- momentum schedules
def test_cosine_momentum():
    assert cosine_momentum(0.996, 0, 100) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 50, 100) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.996, 7, None) == 0.996


# ---------------------------------------------------------------------------- BYOL
def test_byol_target_changes_only_by_ema():
    torch.manual_seed(0)
    model = BYOL(1, **TINY, augment=AUG, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16,
                 total_steps=10)
    opt = torch.optim.SGD(trainable(model), lr=0.5)
    batch = {"x": torch.randn(8, 40, 1)}
    target_before = params(model.target_backbone) + params(model.target_projector)
    out = model(batch)
    loss = BYOLLoss()(out, batch)
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in model.target_backbone.parameters())
    opt.step()
    target_after_opt = params(model.target_backbone) + params(model.target_projector)
    assert all(torch.equal(a, b) for a, b in zip(target_before, target_after_opt))
    model.after_optimizer_step(3)
    tau = cosine_momentum(0.996, 3, 10)
    online = params(model.backbone) + params(model.projector)
    target = params(model.target_backbone) + params(model.target_projector)
    for t_old, o, t_new in zip(target_before, online, target):
        assert torch.allclose(t_new, tau * t_old + (1 - tau) * o, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(target_before, target))


# ---------------------------------------------------------------------------- SimSiam
def test_simsiam_gradient_only_through_the_predictor_branch():
    torch.manual_seed(0)
    model = SimSiam(1, **TINY, augment=AUG, proj_dim=16, pred_dim=4)
    out = model({"x": torch.randn(8, 40, 1)})
    z1, p1 = out["z1"], out["p1"]
    loss = SimSiamLoss()(out, {})
    g_total, = torch.autograd.grad(loss, z1, retain_graph=True)
    g_p1, = torch.autograd.grad(loss, p1, retain_graph=True)
    g_via_predictor, = torch.autograd.grad(p1, z1, grad_outputs=g_p1)
    # z1 also enters D(p2, stopgrad(z1)); with the stop-gradient that path adds nothing
    assert torch.allclose(g_total, g_via_predictor, atol=1e-7)
    assert g_total.abs().sum() > 0


# ---------------------------------------------------------------------------- MoCo
def test_moco_queue_ring_buffer_and_key_encoder_ema():
    torch.manual_seed(0)
    model = MoCo(1, **TINY, augment=AUG, proj_dim=4, queue_size=5, momentum=0.9)
    assert model.queue.shape == (5, 4) and int(model.queue_ptr) == 0
    k1 = torch.randn(3, 4)
    model.enqueue(k1)
    assert int(model.queue_ptr) == 3 and torch.equal(model.queue[:3], k1)
    k2 = torch.randn(3, 4)
    model.enqueue(k2)                                      # wraps around: rows 3, 4, 0
    assert int(model.queue_ptr) == 1
    assert torch.equal(model.queue[3:], k2[:2]) and torch.equal(model.queue[0], k2[2])
    assert torch.equal(model.queue[1:3], k1[1:])
    capped = MoCo(1, **TINY, augment=AUG, proj_dim=4, queue_size=65536, n_pretrain=50)
    assert capped.queue.shape[0] == 50                     # never longer than the data

    opt = torch.optim.SGD(trainable(model), lr=0.5)
    batch = {"x": torch.randn(4, 40, 1)}
    key_before = params(model.key_backbone)
    out = model(batch)
    keys = out["k"].clone()
    loss = MoCoLoss(0.2)(out, batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert int(model.queue_ptr) == 1                       # nothing enqueued before the step ends
    model.after_optimizer_step(1)
    for k_old, q, k_new in zip(key_before, params(model.backbone), params(model.key_backbone)):
        assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)
    assert torch.allclose(model.queue[[1, 2, 3, 4]], keys)  # this batch's keys, at the pointer
    assert int(model.queue_ptr) == 0
    model.eval()
    model(batch)
    model.after_optimizer_step(2)
    assert int(model.queue_ptr) == 0                       # evaluation never enqueues


# ---------------------------------------------------------------------------- DINO
def test_dino_teacher_ema_centre_update_multicrop_and_frozen_last_layer():
    torch.manual_seed(0)
    model = DINO(1, **TINY, out_dim=32, hidden_dim=16, bottleneck_dim=8, n_local_crops=3,
                 total_steps=200, center_momentum=0.9)
    assert model.freeze_steps == 2                         # 1 % of the run's 200 steps
    opt = torch.optim.SGD(trainable(model), lr=0.5)
    batch = {"x": torch.randn(8, 60, 1)}
    teacher_before = params(model.teacher_backbone) + params(model.teacher_head)
    centre_before = model.center.clone()
    out = model(batch)
    assert out["student"].shape == (5, 8, 32) and out["teacher"].shape == (2, 8, 32)
    loss = DINOLoss()(out, batch)["loss"]
    opt.zero_grad()
    loss.backward()
    assert model.head.last_layer.v.grad is None            # frozen during the first 1 %
    assert model.head.mlp.net[0].weight.grad is not None
    assert all(p.grad is None for p in model.teacher_backbone.parameters())
    opt.step()
    model.after_optimizer_step(1)
    tau = cosine_momentum(0.996, 1, 200)
    student = params(model.backbone) + params(model.head)
    for t_old, s, t_new in zip(teacher_before, student, params(model.teacher_backbone) + params(model.teacher_head)):
        assert torch.allclose(t_new, tau * t_old + (1 - tau) * s, atol=1e-6)
    expected_c = 0.9 * centre_before + 0.1 * out["teacher"].reshape(-1, 32).mean(0, keepdim=True)
    assert torch.allclose(model.center, expected_c, atol=1e-6)
    # after the first 1 %: trained (a checkpoint's step counter reaches the host-side count)
    model.load_state_dict({**model.state_dict(), "step": torch.tensor(5)})
    assert model.steps_taken == 5
    out = model(batch)
    DINOLoss()(out, batch)["loss"].backward()
    assert model.head.last_layer.v.grad is not None
    assert model.eval_network() is model.teacher_backbone


# ---------------------------------------------------------------------------- instance discrimination
def test_instdisc_memory_bank_update_and_fixed_normaliser():
    torch.manual_seed(0)
    model = InstDisc(1, **TINY, augment=AUG, n_pretrain=20, feature_dim=4, nce_k=6, bank_momentum=0.5)
    batch = {"x": torch.randn(4, 40, 1), "index": torch.tensor([3, 7, 8, 19])}
    bank_before = model.bank.clone()
    out = model(batch)
    assert out["noise_logits"].shape == (4, 6) and torch.isfinite(model.log_z)
    log_z = model.log_z.clone()
    feats = model._pending[1].clone()
    loss = InstDiscLoss()(out, batch)
    loss.backward()
    model.after_optimizer_step(1)
    expected = torch.nn.functional.normalize(0.5 * bank_before[batch["index"]] + 0.5 * feats, dim=1)
    assert torch.allclose(model.bank[batch["index"]], expected, atol=1e-6)
    others = torch.ones(20, dtype=torch.bool)
    others[batch["index"]] = False
    assert torch.equal(model.bank[others], bank_before[others])
    model(batch)
    assert torch.equal(model.log_z, log_z)                 # Z is estimated once
    with pytest.raises(ValueError, match="index"):
        model({"x": batch["x"]})
    model.eval()
    assert torch.isfinite(InstDiscLoss()(model({"x": batch["x"]}), {}))   # validation: second view


# ---------------------------------------------------------------------------- hybrid
def test_hybrid_labels_and_requirements():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    semi = semi_supervised_labels(y, 0.1, seed=0)
    assert (semi >= 0).sum() == 10 and set(np.unique(semi[semi >= 0])) == {0, 1, 2}
    assert np.array_equal(semi[semi >= 0], y[semi >= 0])
    assert np.array_equal(semi, semi_supervised_labels(y, 0.1, seed=0))
    torch.manual_seed(0)
    model = Hybrid(1, **TINY, augment=AUG, num_classes=3)
    out = model({"x": torch.randn(6, 40, 1), "y": torch.tensor([0, 1, -1, -1, 2, 0])})
    assert out["logits"].shape == (12, 3)
    parts = HybridLoss()(out, {})
    assert parts["ce"] > 0 and parts["supcon"] > 0
    with pytest.raises(ValueError, match="labels"):
        model({"x": torch.randn(6, 40, 1)})


def test_hybrid_max_per_class_caps_labelled_classes_and_keeps_all_unlabelled(data_dir, cache_dir, tmp_path):
    """model=hybrid with trainer.max_per_class=N on ECG200 (label_fraction 0.25 of the 80
    TRAIN series): every epoch holds at most N labelled series per class and all the
    unlabelled (-1) ones; -1 is not capped as if it were a class."""
    from exp.exp_pretrain import Exp_Pretrain
    from utils.compose import compose_cfg
    from utils.seed import seed_everything

    cfg = compose_cfg(["model=hybrid", "data=ucr", "data.name=ECG200", "model.repr_dim=16",
                       "model.encoder_kwargs.widths=[16,16]", "model.proj_dim=8",
                       "task.label_fraction=0.25", "trainer.max_per_class=3", "trainer.batch_size=16",
                       "trainer.drop_last=false",
                       f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
                       "trainer.device=cpu", "trainer.progress=false"])
    seed_everything(0)
    exp = Exp_Pretrain(cfg, tmp_path)
    y = exp.data.splits["train"].arrays["y"]
    n_unlabelled = int((y == -1).sum())
    assert n_unlabelled >= 55 and (torch.bincount(y[y >= 0]) > 3).all()    # ~20 labelled, both classes
    for epoch in (0, 1):
        batches = list(exp._loader("train", True, epoch))
        labels = torch.cat([b["y"] for b in batches])
        index = torch.cat([b["index"] for b in batches])
        assert int((labels == -1).sum()) == n_unlabelled
        assert set(index[labels == -1].tolist()) == set(torch.nonzero(y == -1).flatten().tolist())
        assert torch.bincount(labels[labels >= 0]).tolist() == [3, 3]


# ---------------------------------------------------------------------------- representation contract
@pytest.mark.parametrize("cls,kw", [(SimCLR, {}), (MoCo, dict(queue_size=8)),
                                    (BYOL, dict(proj_hidden_dim=8, pred_hidden_dim=8)),
                                    (SimSiam, dict(proj_dim=8, pred_dim=4)),
                                    (DINO, dict(out_dim=8, hidden_dim=8, bottleneck_dim=4, n_local_crops=1)),
                                    (InstDisc, dict(n_pretrain=10)), (Hybrid, dict(num_classes=2))])
def test_encode_and_embed_contract(cls, kw):
    torch.manual_seed(0)
    model = cls(2, **TINY, **kw)
    x = np.random.default_rng(0).normal(size=(5, 30, 2)).astype(np.float32)
    x[1, -4:] = np.nan                                     # a shorter series
    model.train()
    f = model.encode(x, pooling="max", batch_size=2)
    assert f.shape == (5, 16) and f.device.type == "cpu" and torch.isfinite(f).all()
    assert model.training                                  # encode leaves the mode as it was
    assert torch.allclose(model.encode(x, batch_size=5), f, atol=1e-5)   # eval mode: deterministic
    assert model.encode(x, pooling=None).shape == (5, 30, 16)
    model.requires_grad_(True)                             # as the finetune protocol does (DINO: teacher)
    e = model.embed(torch.as_tensor(np.nan_to_num(x[:2])), "max")
    assert e.shape == (2, 16) and e.requires_grad and model.repr_dim == 16
    with pytest.raises(ValueError, match="sliding"):
        model.encode(x, causal=True, sliding_length=1)


# ---------------------------------------------------------------------------- real ECG
@pytest.fixture(scope="module")
def ecg200(data_dir):
    require_ucr(data_dir, "ECG200")
    a = np.loadtxt(data_dir / "UCR" / "ECG200" / "ECG200_TRAIN.tsv")
    return (torch.tensor(a[:, 1:], dtype=torch.float32).unsqueeze(-1),
            torch.tensor((a[:, 0] > 0).astype(np.int64)))


CASES = {
    "simclr": (SimCLR, NTXentLoss(0.5), {}),
    "moco": (MoCo, MoCoLoss(0.2), dict(queue_size=64, momentum=0.99, n_pretrain=100)),
    "byol": (BYOL, BYOLLoss(), dict(proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32, total_steps=40)),
    "simsiam": (SimSiam, SimSiamLoss(), dict(proj_dim=32, pred_dim=8)),
    "dino": (DINO, DINOLoss(), dict(out_dim=128, hidden_dim=32, bottleneck_dim=32, n_local_crops=2,
                                    total_steps=40, freeze_last_layer=0)),
    "instdisc": (InstDisc, InstDiscLoss(), dict(n_pretrain=100, nce_k=0)),
    "hybrid": (Hybrid, HybridLoss(), dict(num_classes=2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pretraining_on_real_ecg_lowers_the_loss(name, ecg200):
    x, y = ecg200
    cls, loss_fn, kw = CASES[name]
    torch.manual_seed(0)
    model = cls(1, **TINY_RESNET, **({"augment": AUG} if name != "dino" else {}), **kw)
    opt = torch.optim.Adam(trainable(model), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for k in range(STEPS.get(name, 30)):
        idx = torch.randperm(len(x), generator=gen)[:32]
        labels = torch.where(idx % 2 == 0, y[idx], torch.full_like(y[idx], -1))   # half labelled
        # DINO: the student-teacher KL (its loss first rises while centring flattens the targets)
        part = "kl" if name == "dino" else "loss"
        losses.append(step(model, loss_fn, {"x": x[idx], "index": idx, "y": labels}, opt, k + 1, part))
    assert np.isfinite(losses).all()
    start, end = np.mean(losses[SKIP[name]:SKIP[name] + 10]), np.mean(losses[-10:])
    assert end < start, f"{name}: loss {start:.3f} -> {end:.3f}"


# MoCo's key encoder lags (m = 0.99 here): it learns more slowly than the others, and its loss
# is compared from when the queue holds only real keys (64 / 32 = 2 steps)
STEPS = {"moco": 80}
SKIP = {k: 0 for k in CASES} | {"moco": 2}


# ---------------------------------------------------------------------------- the main command
def test_main_command_pretrains_and_evaluates_on_ecg200(data_dir, cache_dir, tmp_path, monkeypatch):
    """python main.py model=byol data=ucr data.name=ECG200 (narrow, few steps): the model's config
    picks task=pretrain and its loss, pretrains, and the knn protocol scores the frozen encoder."""
    from tests.helpers import read_metrics, run_experiment
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("CACHE_DIR", str(cache_dir))
    run_experiment(["model=byol", "data=ucr", "data.name=ECG200", "model.repr_dim=32",
                    "model.encoder_kwargs.widths=[16,32]", "model.proj_hidden_dim=64",
                    "model.pred_hidden_dim=64", "trainer.max_steps=15", "trainer.batch_size=32",
                    "task.protocol=knn", "trainer.progress=false", "trainer.device=cpu",
                    "task.embedding_limit=0"], tmp_path)
    metrics = read_metrics(tmp_path)
    assert metrics["steps"] == 15
    assert metrics["test"]["accuracy"] > 0.7          # majority class of ECG200 TEST: 0.64
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
