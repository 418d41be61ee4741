"""task=forecast end to end with tiny models through main.py's run(): PatchTST on ETTh1
(every test window, the future forecast, the figure), Informer / Crossformer and PatchTST
pretraining + fine-tuning on the small weekly ILI file (custom CSV family) to stay fast."""
import numpy as np
import pandas as pd
import pytest

from tests.helpers import read_metrics, run_experiment

pytestmark = pytest.mark.slow

SEQ, LABEL, PRED = 96, 48, 24
TEST_WINDOWS = 4 * 30 * 24 - PRED + 1      # every test window of ETTh1 (seq_len rows borrowed)


def _common(data_dir):
    return [f"paths.data_dir={data_dir}", "data=ett", "data.name=ETTh1",
            f"data.seq_len={SEQ}", f"data.label_len={LABEL}", f"data.pred_len={PRED}",
            "trainer.device=cpu", "trainer.progress=false", "logger.log_hparams=false",
            "trainer.eval_batch_size=1024", "trainer.max_epochs=1"]


def _ili(data_dir):
    return [f"paths.data_dir={data_dir}", "data=custom", "data.name=ili",
            "data.path=forecast/illness/national_illness.csv", "data.seq_len=36",
            "data.label_len=18", "data.pred_len=24", "trainer.device=cpu",
            "trainer.progress=false", "logger.log_hparams=false", "trainer.max_epochs=1"]


ILI_TEST_WINDOWS = int(966 * 0.2) - 24 + 1


def _mean_baseline_mse(data_dir):
    """MSE of forecasting each test window by the mean of its input, on scaled values."""
    from data_provider.forecast_data import build
    from utils.compose import compose_cfg
    b = build(compose_cfg(["model=patchtst", *_common(data_dir)]))
    ds = b.splits["test"]
    batch = ds.__getitems__(list(range(len(ds))))
    pred = batch["x"].mean(1, keepdim=True)
    return float(((batch["y"][:, -PRED:] - pred) ** 2).mean())


def test_patchtst_trains_evaluates_every_window_and_forecasts_the_future(tmp_path, data_dir):
    run_experiment(["model=patchtst", *_common(data_dir), "model.d_model=16", "model.n_heads=2",
                    "model.d_ff=32", "model.e_layers=1", "model.dropout=0.0",
                    "trainer.batch_size=64", "trainer.max_steps=60", "optimizer.lr=1e-3",
                    "task.predict_future=true"], tmp_path)
    m = read_metrics(tmp_path)
    test = m["test"]
    assert test["windows"] == TEST_WINDOWS
    for k in ("mse", "mae", "rmse", "mape", "mspe", "orig_mse", "orig_mae"):
        assert np.isfinite(test[k]), k
    assert test["rmse"] == pytest.approx(np.sqrt(test["mse"]))
    assert test["orig_mse"] > test["mse"]           # ETTh1 loads are in units >> 1 std
    assert test["mse"] < _mean_baseline_mse(data_dir)  # beats "repeat the input mean"

    fc = pd.read_csv(tmp_path / "forecast.csv", parse_dates=["date"])
    assert list(fc.columns) == ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    expected = pd.date_range("2018-06-26 20:00", periods=PRED, freq="h")
    assert (pd.DatetimeIndex(fc["date"]) == expected).all()
    raw = pd.read_csv(data_dir / "forecast/ETT-small/ETTh1.csv")
    assert abs(fc["OT"].mean() - raw["OT"].iloc[-500:].mean()) < 5 * raw["OT"].std()  # original units

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path), size_guidance={"images": 1}).Reload()
    assert "test/forecast" in ev.Tags()["images"]


@pytest.mark.parametrize("model,extra", [
    ("informer", ["model.d_model=16", "model.n_heads=2", "model.d_ff=16", "model.factor=3"]),
    ("crossformer", ["model.d_model=16", "model.n_heads=2", "model.d_ff=16", "model.seg_len=6",
                     "model.e_layers=2", "model.factor=2"]),
])
def test_informer_and_crossformer_run_end_to_end(tmp_path, data_dir, model, extra):
    run_experiment([f"model={model}", *_ili(data_dir), *extra, "data.features=MS",
                    "trainer.batch_size=32", "trainer.max_steps=8"], tmp_path)
    test = read_metrics(tmp_path)["test"]
    assert test["windows"] == ILI_TEST_WINDOWS and np.isfinite(test["mse"])
    assert np.isfinite(test["orig_mae"]) and test["orig_mae"] != pytest.approx(test["mae"])


def test_patchtst_pretrain_then_finetune_from_its_backbone(tmp_path, data_dir):
    tiny = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.e_layers=1",
            "model.patch_len=12", "model.stride=12", "model.padding_patch=null"]
    pre = tmp_path / "pre"
    run_experiment(["model=patchtst_pretrain", "task=forecast", *_ili(data_dir), *tiny,
                    "trainer.batch_size=64", "trainer.max_steps=10"], pre)
    m = read_metrics(pre)["test"]
    assert np.isfinite(m["loss"]) and 0 < m["loss"] < 2   # masked-patch MSE on RevIN'd data
    ft = tmp_path / "ft"
    run_experiment(["model=patchtst", *_ili(data_dir), *tiny, "model.freeze_backbone=true",
                    f"model.pretrained={pre / 'checkpoints' / 'best.pt'}",
                    "trainer.batch_size=64", "trainer.max_steps=5"], ft)
    assert read_metrics(ft)["test"]["windows"] == ILI_TEST_WINDOWS
    # the paper's fine-tuning: head-only epochs, then the whole network at half the lr
    two_phase = ["model=patchtst", *_ili(data_dir), *tiny, "scheduler=patchtst_finetune",
                 f"model.pretrained={pre / 'checkpoints' / 'best.pt'}", "model.freeze_epochs=1",
                 "trainer.max_epochs=2", "trainer.batch_size=64"]
    pretrained = _backbone(pre / "checkpoints" / "best.pt")
    run_experiment([*two_phase, "trainer.max_steps=3"], tmp_path / "phase1")   # inside epoch 1
    assert _same(_backbone(tmp_path / "phase1" / "checkpoints" / "last.pt"), pretrained)
    run_experiment(two_phase, tmp_path / "both")
    assert not _same(_backbone(tmp_path / "both" / "checkpoints" / "last.pt"), pretrained)


def _backbone(path):
    import torch
    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    return {k: v for k, v in state.items() if k.startswith("backbone.") and v.is_floating_point()
            and "running" not in k}       # BatchNorm statistics move in train mode anyway


def _same(a, b):
    import torch
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_paper_settings_compose():
    from utils.compose import compose_cfg
    p = compose_cfg(["experiment=patchtst_etth1"])
    assert (p.task.name, p.loss._target_) == ("forecast", "utils.losses.forecast.ForecastMSE")
    assert (p.data.seq_len, p.model.patch_len, p.model.stride) == (336, 16, 8)
    assert (p.model.d_model, p.model.n_heads, p.model.e_layers, p.model.d_ff) == (16, 4, 3, 128)
    assert (p.trainer.batch_size, p.optimizer.lr) == (128, 1e-4)
    horizons = {}
    for name in ("informer_etth1", "informer_etth1_h48", "informer_etth1_h168",
                 "informer_etth1_h336", "informer_etth1_h720"):
        c = compose_cfg([f"experiment={name}"])
        horizons[c.data.pred_len] = (c.data.seq_len, c.data.label_len)
        assert c.model.d_model == 512 and c.trainer.max_epochs == 6 and c.trainer.batch_size == 32
    assert horizons == {24: (48, 48), 48: (96, 48), 168: (168, 168), 336: (168, 168),
                        720: (336, 336)}
    c = compose_cfg(["experiment=crossformer_etth1"])
    assert (c.data.seq_len, c.data.pred_len, c.model.factor, c.model.win_size) == (96, 96, 10, 2)
    f = compose_cfg(["experiment=patchtst_etth1_finetune", "model.pretrained=x.pt"])
    assert (f.model.freeze_epochs, f.trainer.max_epochs, f.scheduler.interval) == (10, 30, "step")
    assert f.scheduler.freeze_epochs == 10 and f.scheduler.unfrozen_lr_scale == 0.5
    # the command line still wins over a model's own task and data
    assert compose_cfg(["model=patchtst", "data=custom"]).data.family == "custom"
