"""task=impute: the masks, the baselines and the loss against direct computations, the
Transformer imputer's shapes, and the task end to end on ETTh1 (every test window scored, the
model never shown a hidden value, the loss falling, the baselines recomputed from the data)."""
import numpy as np
import pytest
import torch

from tests.helpers import read_metrics, run_experiment
from utils.imputation import (draw_hidden, evaluation_hidden, gap_length, hidden_errors,
                              linear_fill, mean_fill)
from utils.losses.imputation import HiddenMSE


# ----------------------------------------------------------------------------- masks
def test_random_mask_hides_the_rate_and_gap_mask_one_run_per_channel():
    g = torch.Generator().manual_seed(0)
    hidden = draw_hidden((64, 96, 7), "random", 0.25, generator=g)
    assert hidden.dtype == torch.bool and abs(hidden.float().mean().item() - 0.25) < 0.01
    gaps = draw_hidden((64, 96, 7), "gaps", 0.25, generator=g)
    length = gap_length(0.25, 96)
    assert length == 24 and (gaps.sum(dim=1) == length).all()
    # one contiguous run: exactly one rising edge per window and channel
    padded = torch.cat([torch.zeros(64, 1, 7, dtype=torch.bool), gaps], dim=1)
    assert ((padded[:, 1:] & ~padded[:, :-1]).sum(dim=1) == 1).all()
    starts = gaps.float().argmax(dim=1)
    assert len(torch.unique(starts)) > 20           # the gaps move


def test_evaluation_masks_are_fixed_per_window_whatever_the_batch():
    one = evaluation_hidden(torch.tensor([5, 6, 7]), 96, 7, "random", 0.5, seed=0)
    other = evaluation_hidden(torch.tensor([7, 100, 5]), 96, 7, "random", 0.5, seed=0)
    assert torch.equal(one[0], other[2]) and torch.equal(one[2], other[0])
    assert not torch.equal(one[0], one[1])
    assert not torch.equal(one[0], evaluation_hidden(torch.tensor([5]), 96, 7, "random", 0.5, seed=1)[0])


# ----------------------------------------------------------------------------- baselines
def test_linear_fill_equals_np_interp_per_window_and_channel():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(20, 30, 3))
    hidden = rng.random((20, 30, 3)) < 0.4
    hidden[0, :, 0] = True                        # nothing observed: 0
    hidden[1, :5, 1] = True                        # hidden start: the first observed value held
    hidden[1, -4:, 2] = True                       # hidden end: the last observed value held
    filled = linear_fill(values, hidden)
    t = np.arange(30)
    for i in range(20):
        for c in range(3):
            obs = ~hidden[i, :, c]
            want = np.interp(t, t[obs], values[i, obs, c]) if obs.any() else np.zeros(30)
            np.testing.assert_allclose(filled[i, :, c], want, atol=1e-12)
    np.testing.assert_array_equal(filled[~hidden], values[~hidden])


def test_mean_fill_is_the_observed_mean():
    rng = np.random.default_rng(1)
    values, hidden = rng.normal(size=(4, 10, 2)), rng.random((4, 10, 2)) < 0.5
    hidden[2, :, 1] = True
    filled = mean_fill(values, hidden)
    for i in range(4):
        for c in range(2):
            obs = ~hidden[i, :, c]
            want = values[i, obs, c].mean() if obs.any() else 0.0
            assert np.allclose(filled[i, hidden[i, :, c], c], want)


def test_hidden_mse_ignores_the_observed_values():
    true, pred = torch.randn(4, 12, 3), torch.randn(4, 12, 3)
    hidden = torch.rand(4, 12, 3) < 0.3
    loss = HiddenMSE()({"pred": pred, "true": true, "hidden": hidden})
    assert loss.item() == pytest.approx(((pred - true)[hidden] ** 2).mean().item(), rel=1e-5)
    changed = torch.where(hidden, pred, pred + 100.0)
    assert HiddenMSE()({"pred": changed, "true": true, "hidden": hidden}).item() == pytest.approx(loss.item())
    errors = hidden_errors(pred.numpy(), true.numpy(), hidden.numpy())
    assert errors["mse"] == pytest.approx(loss.item(), rel=1e-5)


def test_transformer_imputer_returns_the_whole_window():
    from models.transformer_imputer import TransformerImputer
    model = TransformerImputer(enc_in=7, c_out=7, mark_dim=4, d_model=16, n_heads=2, d_ff=16)
    out = model(torch.randn(3, 37, 7), torch.randn(3, 37, 4))
    assert out.shape == (3, 37, 7)
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- end to end
SEQ = 48
TEST_WINDOWS = 4 * 30 * 24 + 1     # the test months plus the seq_len rows borrowed before them


def _common(data_dir):
    return [f"paths.data_dir={data_dir}", "model=transformer_imputer", "data.name=ETTh1",
            f"data.seq_len={SEQ}", "model.d_model=16", "model.n_heads=2", "model.d_ff=16",
            "trainer.device=cpu", "trainer.progress=false", "logger.log_hparams=false",
            "trainer.eval_batch_size=512", "trainer.batch_size=64", "trainer.max_epochs=1"]


@pytest.mark.slow
@pytest.mark.parametrize("mask,epochs", [("random", 1), ("gaps", 3)])
def test_impute_on_etth1_scores_every_test_window_and_learns(tmp_path, data_dir, one_thread, mask,
                                                             epochs):
    seen = []                                      # what the model is shown
    from models import transformer_imputer
    forward = transformer_imputer.TransformerImputer.forward

    def recording(self, x, x_mark=None):
        seen.append(x.detach().clone())
        return forward(self, x, x_mark)

    transformer_imputer.TransformerImputer.forward = recording
    try:
        run_experiment([*_common(data_dir), f"task.mask={mask}", "task.mask_rate=0.25",
                        f"trainer.max_epochs={epochs}", "trainer.log_every_n_steps=1"], tmp_path)
    finally:
        transformer_imputer.TransformerImputer.forward = forward
    m = read_metrics(tmp_path)
    test = m["test"]
    assert test["windows"] == TEST_WINDOWS
    expected_hidden = (round(0.25 * SEQ) * 7 * TEST_WINDOWS if mask == "gaps"
                       else pytest.approx(0.25 * SEQ * 7 * TEST_WINDOWS, rel=0.01))
    assert test["hidden_values"] == expected_hidden
    for k in ("mse", "mae", "orig_mse", "orig_mae"):
        assert np.isfinite(test[k]) and np.isfinite(test["baseline_linear"][k]), k
    # the window mean knows nothing of the shape; a trained imputer must do better (a gap is
    # learnt in a few epochs: the mean and the line across it miss its shape)
    assert test["mse"] < test["baseline_mean"]["mse"]
    if mask == "gaps":
        assert test["mse"] < test["baseline_linear"]["mse"]

    # the baselines, recomputed from the test windows and the fixed masks
    from data_provider.forecast_data import build
    from utils.compose import compose_cfg
    from exp.exp_impute import TEST_SEED_OFFSET
    from utils.imputation import evaluation_hidden
    cfg = compose_cfg([*_common(data_dir), f"task.mask={mask}", "task.mask_rate=0.25",
                       "data.pred_len=0", "data.label_len=0"])
    ds = build(cfg).splits["test"]
    index = torch.arange(len(ds))
    x = ds.__getitems__(index.tolist())["x"]
    hidden = evaluation_hidden(index, SEQ, 7, mask, 0.25, seed=0 + TEST_SEED_OFFSET)
    assert int(hidden.sum()) == test["hidden_values"]
    want = hidden_errors(linear_fill(np.where(hidden, 0, x), hidden.numpy()), x.numpy(), hidden.numpy())
    assert test["baseline_linear"]["mse"] == pytest.approx(want["mse"], rel=1e-6)

    # every input the model saw has zeros where values were hidden: the test pass's inputs
    # are the last len(ds) windows; a hidden value is never 0 in the scaled data
    shown = torch.cat(seen[-int(np.ceil(len(ds) / 512)):])
    assert shown.shape == x.shape
    assert (shown[hidden] == 0).all() and torch.equal(shown[~hidden], x[~hidden])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path), size_guidance={"images": 1, "scalars": 0}).Reload()
    assert "test/imputation" in ev.Tags()["images"]
    losses = [e.value for e in ev.Scalars("train/loss")]
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:10])


def test_impute_refuses_data_it_cannot_impute(tmp_path, data_dir):
    from exp.exp_impute import Exp_Impute
    from utils.compose import compose_cfg
    cfg = compose_cfg([*_common(data_dir), "data.features=MS"])
    with pytest.raises(ValueError, match="data.features=M"):
        Exp_Impute(cfg, tmp_path)
    cfg = compose_cfg([*_common(data_dir), "task.mask=blocks"])
    with pytest.raises(ValueError, match="task.mask='blocks' is not known"):
        Exp_Impute(cfg, tmp_path)
    cfg = compose_cfg([*_common(data_dir), "task.mask_rate=1.0"])
    with pytest.raises(ValueError, match="task.mask_rate=1.0"):
        Exp_Impute(cfg, tmp_path)


TINY_DDPM = ["model=ddpm", "model.base_channels=8", "model.channel_mults=[1,2]",
             "model.num_res_blocks=1", "model.attention=false", "model.timesteps=100",
             "model.sample_steps=4"]


@pytest.mark.slow
def test_ddpm_imputes_etth1_validates_on_its_own_loss_and_keeps_observed_values(tmp_path, data_dir,
                                                                               one_thread):
    from models.ddpm import DDPM
    imputed = []
    impute = DDPM.impute

    def recording(self, x_observed, observed, *args, **kwargs):
        out = impute(self, x_observed, observed, *args, **kwargs)
        imputed.append((x_observed.clone(), observed.clone(), out.clone()))
        return out

    DDPM.impute = recording
    try:
        run_experiment([f"paths.data_dir={data_dir}", *TINY_DDPM, "data.name=ETTh1",
                        f"data.seq_len={SEQ}", "trainer.device=cpu", "trainer.progress=false",
                        "logger.log_hparams=false", "trainer.eval_batch_size=512",
                        "trainer.batch_size=64", "trainer.max_steps=30", "trainer.max_epochs=1"],
                       tmp_path)
    finally:
        DDPM.impute = impute
    m = read_metrics(tmp_path)
    # validation is the denoising loss (no sampling); the test split is imputed, every window
    assert set(m["val"]) == {"loss"} and np.isfinite(m["val"]["loss"])
    test = m["test"]
    assert test["windows"] == TEST_WINDOWS and np.isfinite(test["mse"])
    assert sum(len(x) for x, _, _ in imputed) == TEST_WINDOWS
    for x_obs, observed, out in imputed:
        assert torch.equal(out[observed], x_obs[observed])
        assert (x_obs[~observed] == 0).all()         # the hidden values never reach the model


@pytest.mark.slow
def test_impute_on_mitbih_records_ds1_to_ds2(tmp_path, data_dir, cache_dir, one_thread):
    """data=ecg: the records cut into 2 s windows, DS1 train/validation records, DS2 records
    (two of them here, to stay fast) tested."""
    run_experiment([f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", *TINY_DDPM,
                    "task=impute", "data=ecg", "data.ssl_window_seconds=2",
                    "data.ds2_records=[100,103]", "trainer.device=cpu",
                    "trainer.progress=false", "logger.log_hparams=false",
                    "trainer.eval_batch_size=1024", "trainer.batch_size=64", "trainer.max_steps=20",
                    "trainer.max_epochs=1", "task.mask=gaps", "task.mask_rate=0.1"], tmp_path)
    test = read_metrics(tmp_path)["test"]
    # every whole 2 s window of the two records (650,000 samples at 360 Hz, 180 Hz here)
    assert test["windows"] == 2 * (650000 // 2 // 360)
    assert test["hidden_values"] == test["windows"] * gap_length(0.1, 360)
    assert np.isfinite(test["mse"]) and "orig_mse" not in test      # beats z-scored per window
    # a 0.2 s gap can hold a QRS complex: the line across it and the window mean both miss it
    assert np.isfinite(test["baseline_linear"]["mse"]) and test["baseline_mean"]["mse"] > 0.5
