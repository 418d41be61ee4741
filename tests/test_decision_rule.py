"""Class-imbalance choices and the DS1-fitted decision rule: the offsets search against
direct computations on synthetic posteriors, the logit-adjusted loss against its formula,
per-patient RR normalisation against a brute-force window mean, the protocols' class weights,
and real MIT-BIH runs of a classifier and a pretrained encoder's protocol under the rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from tests.helpers import compose_cfg, read_metrics, run_experiment, run_paths

from data_provider.data_factory import data_provider
from data_provider.mitdb_signal import normalize_rr, rr_features
from utils.decision_rule import fit_class_offsets, macro_f1, rule_metrics
from utils.losses.supervised import CrossEntropy, balanced_class_weights
from utils.protocols import fit_linear, fit_logistic, fit_svm

PRIOR = np.array([0.90, 0.08, 0.02])


def gaussian_classes(n: int, prior, seed: int):
    """Three 1-D Gaussian classes (means 0, 1.5, 3) drawn with ``prior``; the logits are the
    exact log-posteriors under the training prior PRIOR."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=prior)
    x = rng.normal(np.array([0.0, 1.5, 3.0])[y], 1.0)
    loglik = -0.5 * (x[:, None] - np.array([0.0, 1.5, 3.0])[None]) ** 2
    return loglik + np.log(PRIOR), y


def test_macro_f1_equals_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    present = np.array([0, 1, 3])
    assert macro_f1(y, pred, present, 4) == pytest.approx(
        f1_score(y, pred, labels=present, average="macro", zero_division=0))


def test_fitted_offsets_raise_macro_f1_on_held_out_data_of_a_balanced_population():
    # trained on 90/8/2 %; validation and test drawn from a balanced population: the offsets
    # found on validation must carry over to an independent test sample
    val_logits, val_y = gaussian_classes(3000, [1 / 3] * 3, seed=1)
    test_logits, test_y = gaussian_classes(3000, [1 / 3] * 3, seed=2)
    b = fit_class_offsets(val_logits, val_y)
    present = np.arange(3)
    before = macro_f1(test_y, test_logits.argmax(1), present, 3)
    after = macro_f1(test_y, (test_logits + b).argmax(1), present, 3)
    assert after > before + 0.1
    # the minority classes move up relative to the majority one (which stays at 0)
    assert b[0] == 0 and b[1] > 0 and b[2] > 0


def test_offsets_never_lower_macro_f1_where_fitted_and_leave_rare_classes_alone():
    for seed in range(5):
        logits, y = gaussian_classes(800, PRIOR, seed)
        b = fit_class_offsets(logits, y, min_support=30)
        present = np.unique(y)
        assert macro_f1(y, (logits + b).argmax(1), present, 3) >= macro_f1(y, logits.argmax(1), present, 3)
        assert b[2] == 0 and (y == 2).sum() < 30          # about 16 samples: too few to fit


def test_rule_metrics_keep_the_argmax_figures_and_the_plain_auroc():
    logits, y = gaussian_classes(600, [1 / 3] * 3, seed=3)
    b = np.array([0.0, 2.0, 4.0])
    m = rule_metrics(y, logits, b, ["a", "b", "c"])
    plain = rule_metrics(y, logits, None, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(((logits + b).argmax(1) == y).mean())
    assert m["argmax"]["accuracy"] == pytest.approx(plain["accuracy"])
    assert m["auroc"] == plain["auroc"] and "confusion_matrix" not in m["argmax"]
    # probabilities are shifted as log-probabilities
    probs = torch.softmax(torch.tensor(logits), 1).numpy()
    assert rule_metrics(y, probs, b, None, scores_are_probs=True)["accuracy"] == pytest.approx(m["accuracy"])


def test_logit_adjusted_loss_equals_its_formula():
    counts = {"train": {"N": 900, "S": 80, "V": 20, "F": 0}}
    loss = CrossEntropy(logit_adjustment=1.5, class_counts=counts)
    logits, y = torch.randn(16, 4), torch.randint(0, 4, (16,))
    prior = np.array([900, 80, 20, 20]) / 1000.0          # the absent class: the smallest prior
    direct = F.cross_entropy(logits + 1.5 * torch.tensor(np.log(prior), dtype=torch.float32), y)
    assert torch.allclose(loss({"logits": logits}, {"y": y}), direct)
    with pytest.raises(ValueError, match="class counts"):
        CrossEntropy(logit_adjustment=1.0)


def test_balanced_weights_are_inverse_frequency_with_mean_one():
    w = balanced_class_weights([900, 90, 10, 0])
    np.testing.assert_allclose(w[:3] * [900, 90, 10], w[0] * 900)
    assert w[3] == 0 and w[:3].mean() == pytest.approx(1.0)


def test_rr_normalised_by_the_record_and_by_the_past_window():
    rng = np.random.default_rng(0)
    peaks = [np.cumsum(rng.integers(200, 400, n)) for n in (300, 50)]     # samples at 360 Hz
    rr = np.concatenate([rr_features(p, 360.0) for p in peaks])
    record = np.repeat([1, 2], [300, 50])
    rec = normalize_rr(rr, record, "record")
    np.testing.assert_allclose(rec, rr[:, :3] / rr[:, 3:4], rtol=1e-6)
    causal = normalize_rr(rr, record, "causal", causal_seconds=20.0)
    for r, i in ((1, 0), (1, 7), (1, 250), (2, 49)):
        rows = np.flatnonzero(record == r)
        pre = rr[rows, 0].astype(np.float64)
        t = np.cumsum(pre) - pre[0]
        window = pre[(t >= t[i] - 20.0) & (t <= t[i])]      # the intervals of the past 20 s
        np.testing.assert_allclose(causal[rows[i]], rr[rows[i], :3] / window.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="rr_normalize"):
        normalize_rr(rr, record, "patient")


def test_protocols_weigh_classes_when_asked():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(270, int), np.ones(30, int)]
    x = rng.normal(y[:, None] * 1.0, 1.0, size=(300, 4))
    svm = fit_svm(x, y, class_weight="balanced", cv=3)
    np.testing.assert_allclose(svm.estimator.class_weight_, 300 / (2 * np.array([270, 30])))
    # balanced weights move the linear models' boundaries toward the majority class
    for fit in (fit_logistic, lambda *a, **k: fit_linear(*a, min_steps=200, **k)):
        plain = (fit(x, y).predict(x) == 1).sum()
        weighted = (fit(x, y, class_weight="balanced").predict(x) == 1).sum()
        assert weighted > plain
    with pytest.raises(ValueError, match="class_weight"):
        fit_svm(x, y, class_weight="inverse")


MITDB_FEW = ["data=ecg", "data.ds1_records=[101,106,118,119,203,223]", "data.val_records=[119,223]",
             "data.ds2_records=[100,232]", "trainer.max_per_class=300"]


def test_classifier_under_the_fitted_rule_on_mitdb(data_dir, cache_dir, tmp_path):
    m = run_experiment(["task=classification", "model=resnet1d", *MITDB_FEW, *run_paths(data_dir, cache_dir),
                        "model.widths=[8,8,8]", "trainer.max_epochs=2", "task.decision_rule=fitted",
                        "data.rr_normalize=record", "loss.logit_adjustment=1.0"], tmp_path / "run")
    assert read_metrics(tmp_path / "run")["decision_rule"] == m["decision_rule"]
    offsets = m["decision_rule"]["offsets"]
    assert set(offsets) == {"N", "S", "V", "F", "Q"} and offsets["N"] == 0.0
    # fitted on val: never below the argmax rule there; the test split reports both rules
    assert m["val"]["macro_f1"] >= m["val"]["argmax"]["macro_f1"]
    test = m["test"]
    assert sum(c["support"] for c in test["per_class"].values()) == \
        sum(c["support"] for c in test["argmax"]["per_class"].values())
    # AAMI's false positive rate and the per-record figures, from the confusion matrix (rows: truth)
    cm = np.array(test["confusion_matrix"])
    for i, name in enumerate(["N", "S", "V", "F", "Q"]):
        negatives = cm.sum() - cm[i].sum()
        assert test["per_class"][name]["fpr"] == pytest.approx((cm[:, i].sum() - cm[i, i]) / negatives)
    rows = {r["record"]: r for r in test["per_record"]}
    assert set(rows) == {100, 232} and sum(r["beats"] for r in rows.values()) == cm.sum()
    assert sum(r["errors"] for r in rows.values()) == cm.sum() - np.trace(cm)
    s_true = sum(r["per_class"].get("S", {}).get("support", 0) for r in rows.values())
    assert s_true == cm[1].sum()


def test_pretrained_encoder_protocol_under_the_fitted_rule_on_mitdb(data_dir, cache_dir, tmp_path):
    m = run_experiment(["task=pretrain", "model=ts2vec", *MITDB_FEW, *run_paths(data_dir, cache_dir),
                        "model.hidden_dims=8", "model.output_dims=16", "model.depth=2",
                        "trainer.max_steps=4", "trainer.batch_size=16", "task.protocol=logistic",
                        "task.decision_rule=fitted", "+task.protocol_args.logistic.class_weight=balanced",
                        "task.embedding_limit=0"], tmp_path / "ssl")
    test = m["test"]
    assert test["decision_rule"]["rule"] == "fitted" and test["decision_rule"]["offsets"]["N"] == 0.0
    assert set(test["argmax"]["per_class"]) == {"N", "S", "V", "F", "Q"}
    # per-record figures under the rule: they add up to its confusion matrix
    cm = np.array(test["confusion_matrix"])
    rows = {r["record"]: r for r in test["per_record"]}
    assert set(rows) == {100, 232} and sum(r["beats"] for r in rows.values()) == cm.sum()
    assert sum(r["errors"] for r in rows.values()) == cm.sum() - np.trace(cm)
    # the logistic fit left downstream_val (records 119, 223) out: it was kept for the offsets
    bundle = data_provider(compose_cfg(["model=ts2vec", *MITDB_FEW, *run_paths(data_dir, cache_dir)]))
    assert test["n_labelled"] == len(bundle.splits["train"])


@pytest.mark.parametrize("override, key", [
    ("task.decision_rule=best", "task.decision_rule"), ("data.rr_normalize=patient", "data.rr_normalize"),
    ("loss.logit_adjustment=-1", "loss.logit_adjustment"), ("task.decision_min_support=0", "task.decision_min_support"),
])
def test_bad_values_are_refused_before_any_work(override, key):
    from utils.config_check import check_config
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        check_config(compose_cfg(["task=classification", "model=resnet1d", "data=ecg", override]))
