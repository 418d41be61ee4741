"""model=dechazal_lda (de Chazal et al. 2004): the beat features against direct computations
(RR intervals of record 100 from its annotations, the QRS width, T-wave end and P wave of a
synthetic beat), the class weighting against scikit-learn's discriminant, and one real
task=classification run on a few MIT-BIH records."""
from __future__ import annotations


import numpy as np
import pytest
import torch
import wfdb
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from tests.helpers import read_metrics, require_files, run_experiment

from data_provider.mitdb_delineation import delineate
from data_provider.mitdb_features import DECHAZAL_FEATURE_NAMES, record_features
from data_provider.mitdb_signal import SignalSettings, filter_signal
from models.dechazal_lda import DeChazalLDA

FS = 360.0
BEAT_SYMBOLS = set("NLRejAaJSVEF/fQ")     # the AAMI beat annotations, written out again


def test_rr_and_morphology_features_of_record_100(data_dir):
    require_files(data_dir, "mitdb/100.hea", "mitdb/100.dat", "mitdb/100.atr")
    path = data_dir / "mitdb" / "100"
    features, peaks = record_features(path, SignalSettings())
    ann = wfdb.rdann(str(path), "atr")
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    assert features.shape == (2273, 45) and np.array_equal(peaks, beats)
    rr = np.diff(beats) / FS
    i = 100                                   # a beat far from the record's edges
    expected = [rr[i - 1], rr[i], rr.mean(), rr[i - 5:i + 5].mean()]
    np.testing.assert_allclose(features[i, :4], expected, rtol=1e-5)
    np.testing.assert_allclose(features[0, 0], rr[0], rtol=1e-5)    # no beat before the first
    # the QRS morphology's 4th sample lies on the fiducial point (-50 ms + 3 x 1/60 s)
    rec = wfdb.rdrecord(str(path))
    for lead, column in ((rec.sig_name.index("MLII"), 7 + 3), (rec.sig_name.index("V5"), 26 + 3)):
        y = filter_signal(rec.p_signal[:, lead], FS, SignalSettings())
        np.testing.assert_allclose(features[:, column], y[beats], atol=1e-5)
    names = dict(zip(DECHAZAL_FEATURE_NAMES, features[i]))
    assert 0.06 < names["qrs_duration"] < 0.12 and names["p_wave"] == 1.0   # a normal sinus beat


def synthetic_beats(qrs_samples: int, with_p: list[bool]):
    """Beats every 0.8 s: a triangular QRS of ``qrs_samples`` (2 mV), a 240 ms half-sine T
    wave (0.2 mV) starting 100 ms after the QRS, and a 90 ms half-sine P wave (0.15 mV)
    ending 60 ms before the QRS where ``with_p`` says. Returns signal, R peaks, QRS onsets
    and T-wave ends."""
    period, n = int(0.8 * FS), len(with_p)
    y = np.zeros(period * (n + 1))
    half = qrs_samples // 2
    peaks, onsets, t_ends = [], [], []
    for k, p in enumerate(with_p):
        r = period // 2 + k * period
        y[r - half:r + 1] = np.linspace(0, 2.0, half + 1)
        y[r:r + half + 1] = np.linspace(2.0, 0, half + 1)
        t0, t_len = r + half + int(0.1 * FS), int(0.24 * FS)
        y[t0:t0 + t_len + 1] += 0.2 * np.sin(np.linspace(0, np.pi, t_len + 1))
        if p:
            p_len = int(0.09 * FS)
            p_end = r - half - int(0.06 * FS)
            y[p_end - p_len:p_end + 1] += 0.15 * np.sin(np.linspace(0, np.pi, p_len + 1))
        peaks.append(r), onsets.append(r - half), t_ends.append(t0 + t_len)
    return y, np.array(peaks), np.array(onsets), np.array(t_ends)


def test_delineation_of_a_synthetic_beat():
    qrs = 36                                  # 100 ms
    with_p = [True, False, True, True, False]
    y, peaks, onsets, t_ends = synthetic_beats(qrs, with_p)
    b = delineate(y, FS, peaks)
    np.testing.assert_allclose(b.qrs_offset - b.qrs_onset, qrs, atol=2)   # within 6 ms
    np.testing.assert_allclose(b.qrs_onset, onsets, atol=1)
    np.testing.assert_allclose(b.t_end, t_ends, atol=2)
    assert b.p_wave.tolist() == with_p


def feature_names(n_lead: int) -> list[str]:
    return DECHAZAL_FEATURE_NAMES[:7] + [f"a_x{i}" for i in range(n_lead)] + [f"b_x{i}" for i in range(n_lead)]


def imbalanced(seed=0, counts=(600, 60, 25), dim=11):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.0, (len(counts), dim))
    scales = [rng.uniform(0.5, 2.0, dim) for _ in counts]
    x = np.concatenate([m + s * rng.normal(size=(c, dim)) for m, s, c in zip(means, scales, counts)])
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    return x, y


def test_class_weighting_is_scikit_learns_with_uniform_priors():
    x, y = imbalanced()
    model = DeChazalLDA(num_classes=3, feature_names=feature_names(2), combine_leads=False)
    model.fit_closed_form({"features": x, "y": y})
    ours = model.posteriors(torch.from_numpy(x)).numpy()
    reference = LinearDiscriminantAnalysis(solver="lsqr", priors=[1 / 3] * 3).fit(x, y)
    np.testing.assert_allclose(ours, reference.predict_proba(x), atol=1e-9)
    # every class's covariance counts equally, whatever its size
    per_class = [np.cov(x[y == k].T, bias=True) for k in range(3)]
    np.testing.assert_allclose(reference.covariance_, np.mean(per_class, axis=0), atol=1e-10)
    # and the small classes are found more often than by the frequency-weighted discriminant
    plain = DeChazalLDA(num_classes=3, feature_names=feature_names(2), class_weighting="none",
                        combine_leads=False)
    plain.fit_closed_form({"features": x, "y": y})
    small = y > 0
    balanced_hits = (ours.argmax(1) == y)[small].mean()
    plain_hits = (plain.posteriors(torch.from_numpy(x)).numpy().argmax(1) == y)[small].mean()
    assert balanced_hits > plain_hits


def test_two_leads_average_the_posteriors_of_one_discriminant_each():
    x, y = imbalanced(seed=1, dim=7 + 2 * 3)
    model = DeChazalLDA(num_classes=4, feature_names=feature_names(3))   # class 3 never seen
    model.fit_closed_form({"features": x, "y": y})
    probs = model.posteriors(torch.from_numpy(x)).numpy()
    lead_cols = [list(range(7)) + list(range(7, 10)), list(range(7)) + list(range(10, 13))]
    expected = np.mean([LinearDiscriminantAnalysis(solver="lsqr", priors=[1 / 3] * 3)
                        .fit(x[:, c], y).predict_proba(x[:, c]) for c in lead_cols], axis=0)
    np.testing.assert_allclose(probs[:, :3], expected, atol=1e-9)
    assert (probs[:, 3] == 0).all()


def test_refuses_data_without_de_chazal_features():
    with pytest.raises(ValueError, match="data.dechazal_features"):
        DeChazalLDA(num_classes=5, feature_names=["pre_rr", "post_rr"])
    with pytest.raises(ValueError, match="class_weighting"):
        DeChazalLDA(num_classes=5, feature_names=DECHAZAL_FEATURE_NAMES, class_weighting="inverse")


def test_classification_run_on_a_few_records(data_dir, cache_dir, tmp_path):
    records = [100, 106, 119, 209, 223]
    require_files(data_dir, *(f"mitdb/{r}{ext}" for r in records for ext in (".hea", ".dat", ".atr")))
    run_dir = tmp_path / "run"
    run_experiment(["task=classification", "model=dechazal_lda", "data=ecg",
                    f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
                    "trainer.num_threads=1", "trainer.progress=false",
                    "data.ds1_records=[106,119,209,223]", "data.ds2_records=[100]"], run_dir)
    m = read_metrics(run_dir)
    assert "val" not in m                         # fitted on every DS1 record, as the paper
    test = m["test"]
    assert {"accuracy", "macro_f1", "auroc", "per_class", "confusion_matrix"} <= set(test)
    assert set(test["per_class"]) == {"N", "S", "V", "F", "Q"}
    assert sum(test["per_class"][c]["support"] for c in "NSVFQ") == 2273        # all of record 100
    assert {"sensitivity", "ppv"} <= set(test["per_class"]["S"])
    assert test["accuracy"] > 0.5 and m["steps"] == 0
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
