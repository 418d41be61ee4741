"""BERT on series patches: the 80/10/10 masking rule, the masked loss, next-segment pairs,
the representation contract, and pretraining on real MIT-BIH beats through the protocols."""
from __future__ import annotations

import json

import pytest
import torch

from models.ssl.bert import BERT, KEPT, MASKED, RANDOM, bert_masking, next_segment_pairs
from utils.losses.bert import BERTLoss


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> BERT:
    return BERT(1, 96, **{**dict(patch_len=8, d_model=16, depth=1, num_heads=2, d_ff=32), **kw})


# ---------------------------------------------------------------------------- masking
def test_masking_follows_the_80_10_10_rule():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(64, 20, 6)
    mask_token = torch.full((6,), 7.5)                       # no token of randn equals it
    actions = []
    for _ in range(40):
        out, action, source = bert_masking(tokens, mask_token, 0.15, 0.8, 0.1, generator=gen)
        chosen = action > 0
        assert (chosen.sum(1) == 3).all()                     # round(0.15 * 20) per sample
        masked, rand, kept = action == MASKED, action == RANDOM, action == KEPT
        assert (out[masked] == mask_token).all()              # [MASK] exactly
        flat = tokens.reshape(-1, 6)
        own = torch.arange(64 * 20).view(64, 20)
        assert (source[rand] != own[rand]).all() and (source[~rand] == -1).all()
        assert torch.equal(out[rand], flat[source[rand]])     # another patch of the batch
        assert not (out[rand] == tokens[rand]).all(-1).any()
        assert torch.equal(out[kept | ~chosen], tokens[kept | ~chosen])
        actions.append(action[chosen])
    actions = torch.cat(actions)                              # 7680 chosen tokens
    n = len(actions)
    assert (actions == MASKED).sum() / n == pytest.approx(0.8, abs=0.02)
    assert (actions == RANDOM).sum() / n == pytest.approx(0.1, abs=0.015)
    assert (actions == KEPT).sum() / n == pytest.approx(0.1, abs=0.015)
    # every token equally likely to be chosen: the chosen share per position is 0.15
    chosen_share = torch.stack([bert_masking(tokens, mask_token, generator=gen)[1] > 0
                                for _ in range(40)]).float().mean((0, 1))
    assert chosen_share.sub(0.15).abs().max() < 0.05


def test_masking_rule_is_configurable_and_respects_candidates():
    tokens, mask_token = torch.randn(8, 10, 4), torch.zeros(4)
    _, action, _ = bert_masking(tokens, mask_token, 0.5, mask_prob=1.0, random_prob=0.0)
    assert ((action == MASKED).sum(1) == 5).all() and not ((action == RANDOM) | (action == KEPT)).any()
    _, action, _ = bert_masking(tokens, mask_token, 0.5, mask_prob=0.0, random_prob=0.0)
    assert ((action == KEPT).sum(1) == 5).all()
    candidates = torch.zeros(8, 10, dtype=torch.bool)
    candidates[:, :4] = True
    _, action, _ = bert_masking(tokens, mask_token, 0.3, candidates=candidates)
    assert ((action > 0).sum(1) == 3).all() and not (action[:, 4:] > 0).any()
    # one token in the whole batch: no other patch to copy, it stays
    _, action, _ = bert_masking(torch.randn(1, 1, 4), mask_token, 0.5, 0.0, 1.0)
    assert action.item() == KEPT
    with pytest.raises(ValueError, match="sum to at most 1"):
        tiny(mask_prob=0.8, random_prob=0.3)


def test_model_masks_15_percent_of_patches():
    torch.manual_seed(0)
    out = tiny()({"x": torch.randn(4, 160, 1)})               # 20 patches
    assert out["chosen"].shape == (4, 20) and (out["chosen"].sum(1) == 3).all()
    assert out["pred"].shape == out["target"].shape == (4, 20, 8)


# ---------------------------------------------------------------------------- loss
def test_masked_loss_counts_chosen_positions_only_and_equals_direct_formula():
    torch.manual_seed(0)
    B, N, P = 3, 10, 5
    out = {"pred": torch.randn(B, N, P), "target": torch.randn(B, N, P),
           "chosen": torch.rand(B, N) < 0.3, "nsp_logits": torch.randn(B, 2),
           "nsp_label": torch.tensor([0, 1, 1])}
    out["chosen"][:, 0] = True
    parts = BERTLoss(nsp_weight=0.5)(out)
    c = out["chosen"]
    direct = ((out["pred"] - out["target"]) ** 2).mean(-1)[c].mean()
    assert parts["masked_patch"].item() == pytest.approx(direct.item(), rel=1e-6)
    logp = out["nsp_logits"].log_softmax(-1)
    nsp = -logp[torch.arange(B), out["nsp_label"]].mean()
    assert parts["nsp"].item() == pytest.approx(nsp.item(), rel=1e-6)
    assert parts["loss"].item() == pytest.approx(direct.item() + 0.5 * nsp.item(), rel=1e-6)
    acc = (out["nsp_logits"].argmax(-1) == out["nsp_label"]).float().mean()
    assert parts["nsp_accuracy"].item() == acc.item()
    changed = dict(out, pred=out["pred"].clone())
    changed["pred"][~c] += 100.0                              # unchosen positions only
    assert BERTLoss(nsp_weight=0.5)(changed)["masked_patch"].item() == parts["masked_patch"].item()
    changed["pred"][0, 0] += 1.0                              # a chosen one
    assert BERTLoss(nsp_weight=0.5)(changed)["masked_patch"].item() != parts["masked_patch"].item()
    # normalised targets: each target patch to zero mean and unit variance
    t = out["target"]
    tn = (t - t.mean(-1, keepdim=True)) / (t.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    direct_n = ((out["pred"] - tn) ** 2).mean(-1)[c].mean()
    assert BERTLoss(norm_target=True)(out)["masked_patch"].item() == pytest.approx(direct_n.item(), rel=1e-5)


# ---------------------------------------------------------------------------- next segment
def test_next_segment_pairs_keep_a_and_swap_b_for_half():
    gen = torch.Generator().manual_seed(0)
    patches = torch.randn(16, 9, 3)
    n_a = 4
    labels = []
    for _ in range(200):
        paired, label, partner = next_segment_pairs(patches, n_a, generator=gen)
        assert torch.equal(paired[:, :n_a], patches[:, :n_a])               # A is always its own
        is_next = label == 0
        own = torch.arange(16)
        assert (partner[is_next] == own[is_next]).all() and (partner[~is_next] != own[~is_next]).all()
        assert torch.equal(paired[is_next, n_a:], patches[is_next, n_a:])  # IsNext: own B
        assert torch.equal(paired[~is_next, n_a:], patches[partner[~is_next], n_a:])
        labels.append(label)
    labels = torch.cat(labels).float()
    assert labels.mean().item() == pytest.approx(0.5, abs=0.03)             # 3200 draws
    # partners spread over the other samples
    assert len(set(partner.tolist())) > 4
    # a batch of one keeps its own B: all IsNext
    one = torch.randn(1, 9, 3)
    for _ in range(20):
        paired, label, partner = next_segment_pairs(one, n_a, generator=gen)
        assert label.tolist() == [0] and torch.equal(paired, one)
    torch.manual_seed(0)
    assert tiny()({"x": torch.randn(1, 96, 1)})["nsp_label"].tolist() == [0]


def test_pretraining_sequence_is_cls_a_sep_b_sep_and_encode_is_one_segment():
    model = tiny()
    seen = []
    model.encoder.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0].shape),
                                            with_kwargs=True)
    torch.manual_seed(0)
    model({"x": torch.randn(2, 90, 1)})                       # 12 patches (zero-padded): A 6 | B 6
    assert seen[-1] == (2, 12 + 3, 16)
    model.encode(torch.randn(2, 90, 1))
    assert seen[-1] == (2, 12 + 2, 16)                       # [CLS] patches [SEP]
    with pytest.raises(ValueError, match="at least 2 patches"):
        model({"x": torch.randn(2, 8, 1)})


# ---------------------------------------------------------------------------- encode
def test_encode_shapes_determinism_and_independence_of_the_masking_rng():
    torch.manual_seed(0)
    model = tiny().train()
    x = torch.randn(5, 96, 1)
    assert model.repr_dim == 16
    assert model.encode(x, pooling=None).shape == (5, 12, 16)
    for pooling in ("max", "mean", "last"):
        assert model.encode(x, pooling=pooling).shape == (5, 16)
    torch.manual_seed(1)
    a = model.encode(x, pooling=None)
    torch.manual_seed(2)
    torch.rand(1000)                                          # another state of the RNG
    b = model.encode(x, pooling=None, batch_size=2)
    assert torch.allclose(a, b, atol=1e-6)
    assert model.training                                     # encode leaves the mode as it was
    h = model.encode(x, pooling=None)
    assert torch.allclose(model.encode(x, pooling="max"), h.amax(1), atol=1e-6)
    assert torch.allclose(model.encode(x, pooling="mean"), h.mean(1), atol=1e-6)
    assert model.cls_state(x).shape == (5, 16)
    # dropped steps (mask False) and NaN do not reach the representation
    mask = torch.ones(5, 96, dtype=torch.bool)
    mask[:, 40:] = False
    y = x.clone()
    y[:, 40:] = 50.0
    y[0, 60:] = float("nan")
    assert torch.allclose(model.encode(x, mask=mask), model.encode(y, mask=mask), atol=1e-5)
    assert not torch.allclose(model.encode(x), model.encode(y.nan_to_num()), atol=1e-3)


# ---------------------------------------------------------------------------- real data
SMALL_ECG = ["data=ecg", "data.ds1_records=[101,118]", "data.val_records=[118]",
             "data.ds2_records=[100]"]
STEPS = 700
# NSP on patches sits at chance until attention learns to compare the two halves (a plateau
# of a few hundred steps at lr 1e-3 with dropout and a decaying lr); a constant lr of 3e-3
# without dropout leaves it by step 300-600 on seeds 0-3
FAST = ["model.d_model=32", "model.depth=2", "model.num_heads=2", "model.d_ff=64",
        "model.dropout=0", "optimizer.lr=3e-3", "scheduler=none"]


class Recorder(torch.nn.Module):
    """The loss, keeping the parts of every training step (gradients on)."""

    def __init__(self, loss):
        super().__init__()
        self.loss, self.steps = loss, []

    def forward(self, outputs, batch=None):
        parts = self.loss(outputs, batch)
        if torch.is_grad_enabled():
            self.steps.append({k: float(v.detach()) for k, v in parts.items()})
        return parts


def test_bert_pretrains_on_real_ecg_and_is_evaluated(data_dir, cache_dir, tmp_path):
    """Tiny BERT on MIT-BIH beats (records 101 + 118, 126 samples, 14 patches of 9): the loss
    falls within 100 steps, NSP beats chance on the training batches, then knn on record 100."""
    from exp.exp_pretrain import Exp_Pretrain
    from tests.helpers import compose_cfg, run_paths
    from utils.seed import seed_everything

    cfg = compose_cfg(["model=bert", *SMALL_ECG, *run_paths(data_dir, cache_dir),
                       *FAST, "trainer.max_epochs=null", f"trainer.max_steps={STEPS}",
                       "trainer.batch_size=32", "task.protocol=knn",
                       "task.embedding_limit=0"])
    seed_everything(0)
    exp = Exp_Pretrain(cfg, tmp_path)
    exp.criterion = record = Recorder(exp.criterion)
    exp.train()
    assert exp.state["step"] == STEPS and len(record.steps) == STEPS
    loss = [s["loss"] for s in record.steps]
    first, at_100 = sum(loss[:10]) / 10, sum(loss[90:110]) / 20
    acc = sum(s["nsp_accuracy"] for s in record.steps[-100:]) / 100    # 3200 pairs
    print(f"bert: loss {first:.3f} -> {at_100:.3f} at step 100 -> {sum(loss[-100:]) / 100:.3f}; "
          f"NSP accuracy over the last 100 batches {acc:.3f}")
    assert at_100 < 0.8 * first
    assert acc > 0.6                                          # chance: 0.5 +- 0.01
    results = exp.test()
    print(f"bert: knn accuracy on record 100 {results['test']['accuracy']:.3f}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == results["test"]["accuracy"]
    assert metrics["test"]["protocol"] == "knn" and metrics["steps"] == STEPS
    # record 100 is 99 % normal beats
    assert metrics["test"]["per_class"]["N"]["sensitivity"] > 0.8


# ---------------------------------------------------------------------------- config
def test_model_bert_alone_picks_pretrain_and_its_loss():
    from tests.helpers import compose_cfg
    cfg = compose_cfg(["model=bert"])
    assert cfg.task.name == "pretrain" and cfg.loss._target_ == "utils.losses.bert.BERTLoss"
    assert cfg.loss.nsp_weight == 1.0 and cfg.loss.norm_target is False
    assert (cfg.model.mask_ratio, cfg.model.mask_prob, cfg.model.random_prob) == (0.15, 0.8, 0.1)
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.lr == 1e-4
    assert list(cfg.optimizer.betas) == [0.9, 0.999] and cfg.optimizer.weight_decay == 0.01
    assert (cfg.scheduler.decay, cfg.scheduler.warmup, cfg.scheduler.final_lr) == ("linear", 0.01, 0.0)
    assert compose_cfg(["model=bert", "task=classification"]).task.name == "classification"
    from utils.instantiate import build
    model = build(cfg.model, in_channels=1)
    assert isinstance(model, BERT) and model.repr_dim == 128
