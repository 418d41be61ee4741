"""The GPT-style forecaster: causal next-patch prediction, teacher forcing that agrees with the
rollout it is evaluated by, the true future seen in training only, and a run on ETTh1."""
import numpy as np
import pytest
import torch

from models.gpt_forecaster import GPTForecaster
from tests.helpers import read_metrics, run_experiment
from tests.test_forecast_exp import TEST_WINDOWS, _common, _mean_baseline_mse


def _model(**kw):
    torch.manual_seed(0)
    args = dict(enc_in=3, seq_len=40, pred_len=20, patch_len=8, d_model=16, depth=2,
                num_heads=2, d_ff=32, dropout=0.0)
    return GPTForecaster(**{**args, **kw}).eval()


def test_a_later_patch_never_changes_an_earlier_prediction():
    m = _model()
    patches = torch.randn(4, 6, 8)
    changed = patches.clone()
    changed[:, 4:] += 10.0
    with torch.no_grad():
        a, b = m.next_patches(patches), m.next_patches(changed)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_teacher_forcing_on_its_own_forecast_reproduces_the_rollout():
    """Fed the rollout's forecast as the 'true' future, teacher forcing predicts, one pass,
    the same horizon the rollout built patch by patch (pred_len 20 = 2.5 patches of 8)."""
    m = _model()
    x = torch.randn(5, 40, 3) * 2 + 1
    with torch.no_grad():
        forecast = m(x)
        forced = m(x, future=forecast)
    assert forecast.shape == (5, 20, 3)
    assert forced["pred"].shape == forced["true"].shape == (5, 40 - 8 + 20, 3)
    assert torch.allclose(forced["pred"][:, -20:], forecast, atol=1e-5)
    assert torch.equal(forced["true"][:, -20:], forecast)
    assert torch.equal(forced["true"][:, :32], x[:, 8:])     # the next patch of every lookback patch


def test_the_oldest_steps_that_fill_no_patch_are_left_out():
    m = _model(seq_len=43)                 # 5 patches of 8; the 3 oldest steps fill none
    x = torch.randn(2, 43, 3)
    changed = x.clone()
    changed[:, :3] = 100.0
    with torch.no_grad():
        assert torch.equal(m(x), m(changed))


def test_a_target_narrower_than_the_input_is_refused():
    with pytest.raises(ValueError, match="features=MS"):
        GPTForecaster(enc_in=7, c_out=1, seq_len=96, pred_len=24)


@pytest.mark.slow
def test_gpt_forecaster_trains_on_etth1_and_sees_the_future_in_training_only(tmp_path, data_dir, monkeypatch):
    seen = []
    forward = GPTForecaster.forward

    def recording(self, x, future=None):
        seen.append((self.training, future is not None))
        return forward(self, x, future)

    monkeypatch.setattr(GPTForecaster, "forward", recording)
    run_experiment(["model=gpt_forecaster", *_common(data_dir), "model.patch_len=12",
                    "model.d_model=16", "model.num_heads=2", "model.d_ff=32", "model.depth=1",
                    "model.dropout=0.0", "trainer.batch_size=64", "trainer.max_steps=60",
                    "optimizer.lr=1e-3"], tmp_path)
    assert {s for s in seen if s[0]} == {(True, True)}         # training: always teacher forcing
    assert {s for s in seen if not s[0]} == {(False, False)}   # evaluation: never the future
    test = read_metrics(tmp_path)["test"]
    assert test["windows"] == TEST_WINDOWS and np.isfinite(test["orig_mse"])
    assert test["mse"] < _mean_baseline_mse(data_dir)          # beats "repeat the input mean"


def test_the_etth1_experiment_matches_patchtsts_input_horizon_and_training():
    from utils.compose import compose_cfg
    g, p = compose_cfg(["experiment=gpt_forecaster_etth1"]), compose_cfg(["experiment=patchtst_etth1"])
    from omegaconf import OmegaConf
    for key in ("data.name", "data.features", "data.seq_len", "data.pred_len", "trainer.batch_size",
                "trainer.max_epochs", "optimizer.lr", "scheduler._target_", "model.patch_len"):
        assert OmegaConf.select(g, key) == OmegaConf.select(p, key), key
    assert (g.task.name, g.model.name, g.model.d_model) == ("forecast", "gpt_forecaster", 128)
