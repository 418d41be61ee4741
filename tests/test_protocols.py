"""Downstream protocols on real data (ECG200 series as features), label fractions, and the
ridge forecasting protocol."""
import numpy as np
import pytest
import torch

from models.ssl.ts2vec import TS2Vec
from utils.protocols import FEATURE_PROTOCOLS, get_protocol, stratified_subset
from utils.protocols.ridge_forecast import evaluate_forecasting, forecast_samples
from utils.protocols.svm import fit_svm


@pytest.fixture(scope="module")
def ecg200(data_dir, cache_dir):
    from tests.test_ts2vec import load_ucr
    b = load_ucr("ECG200", data_dir, cache_dir)
    return {s: (b.splits[s].arrays["x"], b.splits[s].arrays["y"].numpy()) for s in ("train", "val", "test")}


# accuracy bars on raw ECG200 (majority class: 0.64; UCR's 1-NN Euclidean: 0.88)
BARS = {"svm": 0.80, "logistic": 0.75, "knn": 0.83, "linear": 0.72}


@pytest.mark.parametrize("name", list(FEATURE_PROTOCOLS))
def test_feature_protocols_on_ecg200(ecg200, name):
    (xtr, ytr), (xva, yva), (xte, yte) = ecg200["train"], ecg200["val"], ecg200["test"]
    f = lambda x: x[..., 0].numpy()
    clf = get_protocol(name)(f(xtr), ytr, num_classes=2, val_features=f(xva), val_y=yva, seed=0)
    pred, scores = clf.predict(f(xte)), clf.scores(f(xte))
    assert scores.shape == (len(yte), 2)
    assert np.array_equal(pred, scores.argmax(1))
    assert (pred == yte).mean() >= BARS[name]


def test_svm_grid_search_runs_when_there_is_enough_data(ecg200):
    (xtr, ytr), (xva, yva), _ = ecg200["train"], ecg200["val"], ecg200["test"]
    x, y = np.concatenate([xtr[..., 0], xva[..., 0]]), np.concatenate([ytr, yva])
    clf = fit_svm(x, y)                                    # 100 samples: 5-fold search over C
    assert clf.estimator.C in (1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf)
    small = fit_svm(x[:30], y[:30])                        # < 50 samples: hard margin directly
    assert small.estimator.C == np.inf


def test_svm_scores_agree_with_predict_on_vote_ties():
    """3 classes: a one-vs-one vote tie makes the raw one-vs-rest decision argmax differ from
    SVC.predict (the official accuracy); the protocol's scores must follow predict."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), np.repeat([0, 1, 2], 10)
    clf = fit_svm(x, y)                                    # < 50 samples: hard margin
    xt = rng.normal(size=(400, 5)) * 2
    raw = clf.estimator.decision_function(xt)
    pred, scores = clf.predict(xt), clf.scores(xt)
    assert (raw.argmax(1) != pred).any()                   # ties occur here
    assert np.array_equal(pred, scores.argmax(1))
    same = raw.argmax(1) == pred                           # rows without a tie are untouched
    assert np.array_equal(scores[same], raw[same])
    assert np.allclose(np.sort(scores, 1), np.sort(raw, 1))  # a tie row only reorders


def test_finetune_trains_a_copy_and_beats_the_majority(ecg200):
    (xtr, ytr), _, (xte, yte) = ecg200["train"], ecg200["val"], ecg200["test"]
    torch.manual_seed(0)
    model = TS2Vec(1, output_dims=32, hidden_dims=16, depth=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clf = get_protocol("finetune")(model, xtr, ytr, num_classes=2, seed=0, epochs=25, lr=1e-3,
                                   batch_size=16, patience=None)
    assert (clf.predict(xte) == yte).mean() >= 0.72
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_stratified_label_fractions():
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    a, b = stratified_subset(y, 0.1, seed=3), stratified_subset(y, 0.1, seed=3)
    assert np.array_equal(a, b)                            # seeded
    counts = np.bincount(y[a], minlength=3)
    assert counts.tolist() == [9, 1, 1]                    # per class, at least one
    assert not np.array_equal(a, stratified_subset(y, 0.1, seed=4))
    assert len(stratified_subset(y, 1.0)) == 100
    assert np.bincount(y[stratified_subset(y, 0.01, 0)], minlength=3).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="label_fraction"):
        stratified_subset(y, 0.0)


def test_forecast_samples_pair_each_step_with_the_next_values():
    data = np.arange(10, dtype=float).reshape(1, 10, 1)
    feats = data.copy()                                    # "representation" of t = x[t]
    x, y = forecast_samples(feats, data, pred_len=3)
    assert x.shape == (7, 1) and y.shape == (7, 3)
    assert np.array_equal(y - x, np.tile([1.0, 2.0, 3.0], (7, 1)))
    x, y = forecast_samples(feats, data, pred_len=3, drop=2)
    assert x[0, 0] == 2 and len(x) == 5


class LagFeatures:
    """A stand-in representation model: step t's representation is x[t-7 .. t]."""

    def encode(self, x, pooling=None, causal=False, sliding_length=None, sliding_padding=0, **_):
        assert causal and sliding_length == 1
        x = np.asarray(x)
        pad = np.concatenate([np.zeros((x.shape[0], 7, x.shape[2])), x], axis=1)
        return np.stack([pad[:, t:t + 8].reshape(x.shape[0], -1) for t in range(x.shape[1])], axis=1)


def test_ridge_forecasting_protocol_predicts_a_sine():
    t = np.arange(1200)
    data = (np.sin(2 * np.pi * t / 50) + 0.05 * np.random.default_rng(0).normal(size=t.size))
    data = data.reshape(1, -1, 1)
    res = evaluate_forecasting(LagFeatures(), data, slice(0, 800), slice(800, 1000),
                               slice(1000, 1200), pred_lens=[5, 24], padding=8)
    assert set(res) == {5, 24}
    for h in (5, 24):
        assert res[h]["mse"] < 0.05 * data.var()          # far better than predicting the mean
    assert res[5]["mse"] <= res[24]["mse"] + 1e-3


def test_capped_subsample_is_stratified_and_survives_singleton_classes():
    from utils.protocols.base import subsample_rows
    y = np.array([0] * 800 + [1] * 200)
    keep = subsample_rows(y, 100, seed=0)
    assert len(set(keep)) == 100 and np.bincount(y[keep]).tolist() == [80, 20]
    y = np.array([0] * 500 + [1] * 499 + [2])           # class 2 has one member
    keep = subsample_rows(y, 100, seed=0)
    assert len(set(keep)) == 100 and np.array_equal(keep, subsample_rows(y, 100, seed=0))


def test_early_stopping_waits_for_min_epochs():
    """A small validation set can peak by chance in the first epochs; patience must not end
    training before min_epochs (the linear probe's min_steps)."""
    from utils.protocols.base import train_keep_best
    layer = torch.nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    calls = []

    def predict_val():   # best at the first epoch, worse ever after
        calls.append(1)
        return np.zeros(4, dtype=int) if len(calls) == 1 else np.ones(4, dtype=int)

    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    kw = dict(epochs=50, batch_size=8, generator=torch.Generator().manual_seed(0),
              predict_val=predict_val, val_y=np.zeros(4, dtype=int), patience=2)
    train_keep_best(layer, opt, x, y, layer, **kw)
    assert len(calls) == 3                     # patience alone: stops after epoch 3
    calls.clear()
    train_keep_best(layer, opt, x, y, layer, min_epochs=20, **kw)
    assert len(calls) == 20
