"""task=generate: the scores of a generated set (Fréchet distance, discriminative score, TSTR
beside TRTR) against what they must give on sets of known relation, and a tiny DDPM trained,
sampled and scored end to end on UCR ECG200 through main.py's run()."""
import json

import numpy as np
import pytest

from models.resnet1d import ResNet1D
from tests.helpers import read_metrics, require_ucr, run_experiment, run_paths
from utils.generation_metrics import (FitSettings, classifier_scores, discriminative_score,
                                      frechet_distance, frechet_distance_from_moments,
                                      matched_by_class, samples_per_class)


def tiny_classifier(widths=(8, 16)):
    return lambda k: ResNet1D(1, k, widths=widths)


# ----------------------------------------------------------------------------- Fréchet distance
def test_frechet_distance_of_gaussians_is_the_closed_form():
    mu_r, mu_g = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    sd_r, sd_g = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    # diagonal covariances commute: Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) = sum (sd_r - sd_g)^2
    closed = np.sum((mu_r - mu_g) ** 2) + np.sum((sd_r - sd_g) ** 2)
    assert closed == pytest.approx(4.25 + 0.25 + 1.0)
    exact = frechet_distance_from_moments(mu_r, np.diag(sd_r ** 2), mu_g, np.diag(sd_g ** 2))
    assert exact == pytest.approx(closed, rel=1e-9)
    # the same from samples of the two Gaussians (sampling error only)
    rng = np.random.default_rng(0)
    real = mu_r + sd_r * rng.standard_normal((40000, 3))
    fake = mu_g + sd_g * rng.standard_normal((40000, 3))
    assert frechet_distance(real, fake) == pytest.approx(closed, rel=0.02)
    # a full covariance, against the formula with an independent matrix square root
    a = rng.standard_normal((3, 3))
    s_r, s_g = a @ a.T + np.eye(3), np.diag(sd_g ** 2)
    w, v = np.linalg.eigh(s_g)
    root_g = v @ np.diag(np.sqrt(w)) @ v.T            # (S_r S_g)^(1/2) has the trace of (root_g S_r root_g)^(1/2)
    w2 = np.linalg.eigvalsh(root_g @ s_r @ root_g)
    direct = np.sum((mu_r - mu_g) ** 2) + np.trace(s_r) + np.trace(s_g) - 2 * np.sum(np.sqrt(w2))
    assert frechet_distance_from_moments(mu_r, s_r, mu_g, s_g) == pytest.approx(direct, rel=1e-8)


def test_frechet_distance_of_identical_sets_is_zero_and_grows_with_a_shift():
    x = np.random.default_rng(1).standard_normal((500, 8))
    assert abs(frechet_distance(x, x)) < 1e-6
    assert frechet_distance(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-6)   # means only
    with pytest.raises(ValueError, match="differ in size"):
        frechet_distance(x, x[:, :4])


# ----------------------------------------------------------------------------- discriminative score
def _sines(n, seed, freq=2.0, length=48, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin(2 * np.pi * freq * t + phase) + noise * rng.standard_normal((n, length))
    return x[..., None].astype(np.float32)


def test_discriminative_score_is_near_zero_for_one_distribution_and_half_for_two():
    settings = FitSettings(epochs=10, lr=3e-3, batch_size=32, seed=0)
    same = discriminative_score(tiny_classifier(), _sines(250, 1), _sines(250, 2), settings)
    other = discriminative_score(tiny_classifier(), _sines(250, 1), _sines(250, 3, freq=5.0), settings)
    assert (same["n_train"], same["n_test"]) == (400, 100)      # 80 % of each side trains
    assert same["score"] == pytest.approx(abs(same["accuracy"] - 0.5))
    assert same["score"] < 0.15
    assert other["score"] > 0.45
    with pytest.raises(ValueError, match="as many real as generated"):
        discriminative_score(tiny_classifier(), _sines(10, 1), _sines(12, 2), settings)


def test_per_class_counts_and_class_matching():
    y = np.repeat([0, 1, 2], [3, 100, 5000])
    assert samples_per_class(y, 4, 50, 2000).tolist() == [50, 100, 2000, 0]
    real_idx, gen_idx = matched_by_class(np.repeat([0, 1], [10, 3]), np.repeat([0, 1], [4, 7]), seed=0)
    assert np.bincount(np.repeat([0, 1], [10, 3])[real_idx]).tolist() == [4, 3]
    assert np.bincount(np.repeat([0, 1], [4, 7])[gen_idx]).tolist() == [4, 3]
    assert len(set(real_idx)) == len(real_idx)                 # drawn without replacement


# ----------------------------------------------------------------------------- TSTR
def _ecg200(data_dir, cache_dir):
    from data_provider.data_factory import data_provider
    from utils.compose import compose_cfg
    bundle = data_provider(compose_cfg(["data=ucr", "data.name=ECG200", *run_paths(data_dir, cache_dir)]))
    arrays = {}
    for split in ("train", "test"):
        ds = bundle.splits[split]
        b = ds.__getitems__(list(range(len(ds))))
        arrays[split] = (b["x"].numpy(), b["y"].numpy())
    return arrays, [str(n) for n in bundle.meta["class_names"]]


def test_tstr_on_replayed_real_series_matches_trtr(data_dir, cache_dir, one_thread):
    arrays, names = _ecg200(data_dir, cache_dir)
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["test"]
    settings = FitSettings(epochs=20, lr=1e-3, batch_size=16, seed=0)
    make = tiny_classifier((16, 32, 32))
    trtr, _ = classifier_scores(make, x_tr, y_tr, x_te, y_te, names, settings)
    # a "generator" that replays real training series: each class resampled with replacement
    rng = np.random.default_rng(1)
    idx = np.concatenate([rng.choice(np.flatnonzero(y_tr == c), (y_tr == c).sum()) for c in range(len(names))])
    replay, _ = classifier_scores(make, x_tr[idx], y_tr[idx], x_te, y_te, names, settings)
    # ...and one that draws the right series with the wrong labels
    wrong, _ = classifier_scores(make, x_tr[idx], rng.permutation(y_tr[idx]), x_te, y_te, names, settings)
    assert trtr["accuracy"] > 0.8 and trtr["n_train"] == len(x_tr)
    assert replay["accuracy"] == pytest.approx(trtr["accuracy"], abs=0.08)
    assert replay["macro_f1"] == pytest.approx(trtr["macro_f1"], abs=0.08)
    assert wrong["accuracy"] < trtr["accuracy"] - 0.1
    assert set(trtr["per_class"]) == set(names)
    assert {"sensitivity", "ppv"} <= set(trtr["per_class"][names[0]])


# ----------------------------------------------------------------------------- end to end
TINY_DDPM = ["model=ddpm", "model.base_channels=8", "model.channel_mults=[1,2]",
             "model.num_res_blocks=1", "model.attention=false", "model.dropout=0.0",
             "model.timesteps=100", "model.sample_steps=10", "model.conditional_imputation=false"]


def _generate(data_dir, cache_dir, *extra):
    return ["task=generate", "data=ucr", "data.name=ECG200", *run_paths(data_dir, cache_dir),
            "logger.log_hparams=false", "task.classifier.widths=[8,16,16]",
            "task.classifier_epochs=5", *extra]


@pytest.mark.slow
def test_tiny_ddpm_generates_writes_and_scores_ecg200(tmp_path, data_dir, cache_dir):
    overrides = _generate(data_dir, cache_dir, *TINY_DDPM, "trainer.max_steps=40",
                          "trainer.batch_size=16", "optimizer.lr=1e-3", "trainer.eval_batch_size=64")
    run_experiment(overrides, tmp_path / "a")
    m = read_metrics(tmp_path / "a")
    test = m["test"]
    assert np.isfinite(test["loss"]) and np.isfinite(m["val"]["loss"]) and m["steps"] == 40

    arrays, _ = _ecg200(data_dir, cache_dir)
    x_tr, y_tr = arrays["train"]
    names = ["-1", "1"]                                        # ECG200's own labels
    expected = np.clip(np.bincount(y_tr), 50, 2000)
    assert test["generated_per_class"] == dict(zip(names, expected.tolist()))
    with np.load(tmp_path / "a" / "generated.npz") as f:
        x, y = f["x"], f["y"]
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (expected.sum(), 96, 1) and np.bincount(y).tolist() == expected.tolist()
    assert np.isfinite(x).all()

    assert test["tstr"]["n_train"] == expected.sum() and test["trtr"]["n_train"] == len(x_tr)
    for score in ("tstr", "trtr"):
        assert 0 <= test[score]["accuracy"] <= 1 and set(test[score]["per_class"]) == set(names)
    d = test["discriminative"]
    matched = np.minimum(np.bincount(y_tr), expected).sum()    # real and generated per class
    assert d["n_train"] + d["n_test"] == 2 * matched
    assert d["score"] == pytest.approx(abs(d["accuracy"] - 0.5)) and 0 <= d["score"] <= 0.5
    fd = test["frechet"]
    # 40 steps of training are far from the data: farther than real training series are
    assert 0 <= fd["train_vs_test"] < fd["generated_vs_test"] and fd["feature_dim"] == 16

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path / "a"), size_guidance={"images": 1}).Reload()
    assert "test/real_vs_generated" in ev.Tags()["images"]

    # the same seed draws the same set and the same scores
    run_experiment(overrides, tmp_path / "b")
    with np.load(tmp_path / "b" / "generated.npz") as f:
        assert np.array_equal(f["x"], x)
    again = read_metrics(tmp_path / "b")["test"]
    assert json.dumps(again["tstr"]) == json.dumps(test["tstr"])
    assert again["frechet"] == test["frechet"]


@pytest.mark.parametrize("overrides,message", [
    (["model=resnet1d"], "model=resnet1d has no sample.*task=generate needs a generative model such as model=ddpm"),
    (["model=ddpm", "model.num_classes=3"], "model.num_classes=3 but data=ECG200 has 2 classes"),
])
def test_refuses_a_model_that_cannot_generate_the_classes(tmp_path, data_dir, cache_dir, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_experiment(_generate(data_dir, cache_dir, *overrides), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_refuses_an_unlabelled_dataset(tmp_path, data_dir, cache_dir):
    with pytest.raises(ValueError, match="data=ETTh1 has no class labels.*data=ecg, data=ucr or data=uea"):
        run_experiment(["task=generate", *TINY_DDPM, "data=ett", "data.name=ETTh1",
                        *run_paths(data_dir, cache_dir)], tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_refuses_a_classifier_it_cannot_build_before_training(tmp_path, data_dir, cache_dir):
    require_ucr(data_dir, "ECG200")        # the check runs once the data is loaded
    with pytest.raises(Exception, match="nope"):
        run_experiment(_generate(data_dir, cache_dir, *TINY_DDPM, "+task.classifier.nope=1"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
