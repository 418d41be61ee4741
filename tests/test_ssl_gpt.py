"""GPT on patches: the causal mask holds, the loss is the next-patch MSE, encode follows the
representation contract, and the method learns on real data and is evaluated downstream."""
from __future__ import annotations

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from models.ssl.gpt import GPT
from tests.helpers import compose_cfg, finite_scores, read_metrics, run_experiment, run_paths
from utils.losses.gpt import GPTLoss, next_patch_mse

# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(d_model=16, depth=2, num_heads=2, d_ff=32)


def tiny(channels: int = 2, patch_len: int = 4, **kw) -> GPT:
    torch.manual_seed(0)
    return GPT(channels, 40, patch_len=patch_len, **{**TINY, **kw})


def test_changing_a_patch_changes_no_earlier_position():
    model = tiny().eval()
    x = torch.randn(3, 40, 2)                        # 10 patches of 4 steps
    with torch.no_grad():
        h = model.encode(x, pooling=None)
        for j in (0, 3, 9):
            x2 = x.clone()
            x2[:, 4 * j: 4 * j + 4] += torch.randn(3, 4, 2) * 3
            h2 = model.encode(x2, pooling=None)
            assert torch.equal(h2[:, :j], h[:, :j]), f"patch {j} leaked into earlier positions"
            assert not torch.allclose(h2[:, j:], h[:, j:]), "the changed patch changed nothing"
            # the training predictions likewise: pred i (of patch i + 1) sees patches <= i only,
            # so the last patch is a target and never an input
            p, p2 = model({"x": x})["pred"], model({"x": x2})["pred"]
            assert torch.equal(p2[:, :j], p[:, :j])
            assert torch.equal(p2, p) if j == 9 else not torch.allclose(p2[:, j:], p[:, j:])


def test_loss_is_the_mse_of_each_next_patch():
    model = tiny(channels=1, patch_len=3).eval()
    x = torch.randn(2, 12, 1)                        # patches [0:3], [3:6], [6:9], [9:12]
    with torch.no_grad():
        out = model({"x": x})
        h = model.decode(x.reshape(2, 4, 3))
        direct = ((model.head(h[:, :3]) - x[:, 3:].reshape(2, 3, 3)) ** 2).mean()
    assert out["pred"].shape == out["target"].shape == (2, 3, 3)
    assert torch.equal(out["target"], x[:, 3:].reshape(2, 3, 3))    # shifted by one patch
    assert GPTLoss()(out, {"x": x})["loss"].item() == pytest.approx(direct.item(), rel=1e-6)


def test_loss_counts_observed_values_only_and_normalises_on_request():
    pred, target = torch.zeros(1, 2, 3), torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    assert next_patch_mse(pred, target).item() == pytest.approx(91 / 6)
    observed = torch.tensor([[[True, True, True], [True, False, False]]])  # padding after 4
    assert next_patch_mse(pred, target, observed).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    # normalised targets: (1, 2, 3) -> (-1.2247, 0, 1.2247), the same for (4, 5, 6)
    z = torch.tensor([-math.sqrt(1.5), 0.0, math.sqrt(1.5)]).expand(1, 2, 3)
    assert next_patch_mse(z, target, norm_target=True).item() == pytest.approx(0.0, abs=1e-5)
    # odd length: the zero padding of the last patch is not a target
    model = tiny(channels=1, patch_len=4)
    out = model({"x": torch.randn(2, 10, 1)})        # 3 patches, the last holds 2 steps
    assert out["observed"].sum().item() == 2 * (4 + 2)


def test_encode_shapes_on_odd_lengths_and_determinism():
    model = tiny()
    model.train()                                    # encode must switch to eval (no dropout)
    x = torch.randn(5, 23, 2)                        # 23 steps -> 6 patches of 4 (1 padded step)
    per_patch = model.encode(x, pooling=None)
    assert per_patch.shape == (5, 6, model.repr_dim) and model.repr_dim == 16
    for pooling in ("max", "mean", "last"):
        a, b = model.encode(x, pooling=pooling), model.encode(x, pooling=pooling, batch_size=2)
        assert a.shape == (5, 16) and torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(model.encode(x, pooling="last"), per_patch[:, -1], atol=1e-6)
    assert model.training                            # encode leaves the mode as it was
    # a series ending early (NaN tail): "last" is its last observed patch's state
    short = x.clone()
    short[:, 9:] = float("nan")                      # steps 0..8 -> patches 0, 1, 2
    assert torch.allclose(model.encode(short, pooling="last"), model.encode(short, pooling=None)[:, 2])
    # the contract's mask (True = keep) drops steps as NaN does
    keep = torch.ones(5, 23, dtype=torch.bool)
    keep[:, 9:] = False
    for pooling in ("max", "last"):
        assert torch.allclose(model.encode(x, mask=keep, pooling=pooling),
                              model.encode(short, pooling=pooling), atol=1e-6)
    with pytest.raises(ValueError, match="unknown pooling"):
        model.encode(x, pooling="first")
    with pytest.raises(ValueError, match="at least 2 patches.*lower model.patch_len"):
        model({"x": torch.randn(2, 4, 2)})


def test_model_config_alone_picks_pretraining_and_its_loss():
    cfg = compose_cfg(["model=gpt"])
    assert cfg.task.name == "pretrain" and cfg.loss._target_ == "utils.losses.gpt.GPTLoss"
    assert cfg.model._target_ == "models.ssl.gpt.GPT" and cfg.task.pooling == "last"
    assert cfg.optimizer.lr == 2.5e-4 and cfg.scheduler.decay == "cosine"
    assert cfg.scheduler.final_lr == 0.0 and cfg.model.dropout == 0.1
    # task= and loss= on the command line still win
    assert compose_cfg(["model=gpt", "loss=mae"]).loss._target_.endswith("MAELoss")


def test_gpt_learns_on_ecg200_and_is_evaluated(data_dir, cache_dir, tmp_path):
    """100 steps on UCR ECG200 (100 series of 96 steps, 12 patches): the next-patch loss falls
    clearly; the frozen decoder's last-token states then go through the downstream protocol.
    A tiny model and 100 steps take a larger lr than GPT-1's 2.5e-4 (sized for long runs)."""
    args = ["model=gpt", "data=ucr", "data.name=ECG200", *run_paths(data_dir, cache_dir),
            "model.d_model=32", "model.depth=2", "model.num_heads=2", "model.d_ff=64",
            "model.patch_len=8", "optimizer.lr=2e-3", "trainer.batch_size=16",
            "trainer.max_epochs=null", "trainer.max_steps=100", "task.protocol=knn",
            "task.embedding_limit=0"]
    res = run_experiment(args, tmp_path)
    metrics = read_metrics(tmp_path)
    assert metrics["steps"] == 100
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    epochs = [e.value for e in acc.Scalars("train/epoch_loss")]      # 7 batches an epoch
    assert len(epochs) == 15 and all(math.isfinite(v) for v in epochs)
    # predicting zeros scores about 1 on z-normalised series
    assert epochs[-1] < 0.4 * epochs[0] and epochs[-1] < 0.3, epochs
    test = res["test"]
    assert test["protocol"] == "knn" and test["n_labelled"] == 100      # TRAIN = train + val
    assert finite_scores(test) and 0 <= test["accuracy"] == metrics["test"]["accuracy"] <= 1
