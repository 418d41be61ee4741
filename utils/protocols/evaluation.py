"""Evaluation of a frozen encoder on the downstream splits: what task=pretrain's test() runs.

``task.protocol`` (svm | logistic | knn | linear | finetune | tfc_finetune) with
``task.label_fraction`` of the labelled downstream_train split (stratified, seeded);
``svm/logistic/knn`` fit on downstream_train + downstream_val (the official TRAIN split, as
TS2Vec; ``task.fit_on_val=false`` keeps val out), ``linear/finetune`` select their epoch on
downstream_val. With ``task.append_features`` the data's per-sample "features" (e.g. the RR
intervals of a beat), z-scored on the training rows, are appended to the representations of
the feature protocols. ``task.evaluations`` (e.g. ``[linear:1.0, knn:0.01]``) runs more
protocol:fraction pairs on the same frozen encoder, every split encoded once; their metrics
are keyed "linear@1", "knn@0.01". Data without a test split (TF-C's Epilepsy) is reported on
downstream_val, and the protocol then gets no validation split (nothing selects on the
reported set). With ``task.decision_rule=fitted`` every protocol keeps downstream_val out of
its fit (``fit_on_val`` is then ignored) and its scores there fit per-class offsets that the
test predictions use (utils/decision_rule.py). Forecasting data follows TS2Vec's ridge
protocol instead (``evaluate_forecast``).
"""
from __future__ import annotations

import logging

import numpy as np
from omegaconf import OmegaConf

from utils.decision_rule import (as_log_scores, check_rule, fit_class_offsets, rule_metrics,
                                 rule_record)
from utils.metrics import per_record_metrics

from . import FEATURE_PROTOCOLS, get_protocol, stratified_subset
from .base import subsample_rows

log = logging.getLogger(__name__)

# protocols that choose their hyper-parameters without a validation split
CV_PROTOCOLS = ("svm", "logistic", "knn")
TASK_CHOICES = {"encoder": ("last", "best"), "pooling": ("max", "last")}


def parse_evaluations(spec) -> list[tuple[str, float]]:
    """task.evaluations ["linear:1.0", "knn:0.01", "svm", ...] -> [(protocol, fraction)];
    a missing fraction means 1.0. Unknown protocols and fractions outside (0, 1] fail early."""
    out = []
    for item in list(spec or []):
        name, _, frac = str(item).partition(":")
        get_protocol(name)
        try:
            fraction = float(frac) if frac else 1.0
        except ValueError:
            raise ValueError(f"task.evaluations entry '{item}' is not 'protocol:fraction', "
                             "e.g. linear:1.0 or knn:0.01") from None
        if not 0 < fraction <= 1:
            raise ValueError(f"task.evaluations entry '{item}': the label fraction must lie in (0, 1]")
        out.append((name, fraction))
    return out


def evaluation_key(name: str, fraction: float) -> str:
    """metrics.json key of one evaluation, e.g. linear@1 or knn@0.01."""
    return f"{name}@{fraction:g}"


def check_task(task) -> None:
    """Wrong task.* values name themselves and the valid choices, before any work."""
    get_protocol(str(task.get("protocol", "svm")))
    check_rule(task.get("decision_rule", "argmax"))
    parse_evaluations(task.get("evaluations"))
    for key, allowed in TASK_CHOICES.items():
        if str(task.get(key, allowed[0])) not in allowed:
            raise ValueError(f"task.{key}={task.get(key)} is not valid; choose one of: {', '.join(allowed)}")
    frac = float(task.get("label_fraction", 1.0))
    if not 0 < frac <= 1:
        raise ValueError(f"task.label_fraction={frac} must lie in (0, 1], e.g. 1.0, 0.1 or 0.01")


def protocols_of(task) -> list[str]:
    """Every protocol a task runs: task.protocol, then those of task.evaluations."""
    return [str(task.get("protocol", "svm"))] + [n for n, _ in parse_evaluations(task.get("evaluations"))]


def _gather(arrays: dict, rows: list) -> np.ndarray:
    """The rows [(split, indices), ...] of per-split arrays, concatenated in that order."""
    return np.concatenate([arrays[s][idx] for s, idx in rows])


def _restrict(rows: list, keep: np.ndarray) -> list:
    """rows [(split, indices), ...] restricted to positions ``keep`` of their concatenation."""
    out, start = [], 0
    for split, idx in rows:
        mine = keep[(keep >= start) & (keep < start + len(idx))] - start
        out.append((split, idx[mine]))
        start += len(idx)
    return out


class SplitFeatures:
    """Frozen representations of the rows [(split, indices), ...]. With ``whole`` every
    split is encoded once, in full, and shared by all evaluations; otherwise only the
    requested rows are encoded (one evaluation, e.g. 1 % of the labels)."""

    def __init__(self, encode, x: dict, whole: bool):
        self.encode, self.x, self.whole, self.cache = encode, x, whole, {}

    def get(self, rows: list) -> np.ndarray:
        if not self.whole:
            return self.encode(_gather(self.x, rows))
        for split, _ in rows:
            if split not in self.cache:
                self.cache[split] = self.encode(self.x[split])
        return _gather(self.cache, rows)


class DownstreamEvaluation:
    """One frozen encoder evaluated by several protocol:fraction pairs on the same splits.

    ``splits``: {"train"|"val"|"test": (x with NaN for unobserved, y, extra features or
    None)} (val optional); ``encode(x) -> [N, D]`` the frozen representations; ``model`` for
    the protocols that fine-tune it."""

    def __init__(self, task, splits: dict, encode, model, meta: dict, seed: int, device,
                 encoder_label: str, report: str, whole: bool, test_records: np.ndarray | None = None):
        """``test_records``: the recording of each test sample (MIT-BIH), for per-record figures."""
        self.task, self.splits, self.model, self.meta = task, splits, model, meta
        self.test_records = test_records
        self.seed, self.device, self.encoder_label, self.report = int(seed), device, encoder_label, report
        self.y = {s: v[1] for s, v in splits.items()}
        self.x = {s: v[0] for s, v in splits.items()}
        self.features = SplitFeatures(encode, self.x, whole)
        self.extra = bool(task.get("append_features", True)) and all(
            v[2] is not None for v in splits.values())
        self.fitted_rule = check_rule(task.get("decision_rule", "argmax")) == "fitted"
        if self.fitted_rule and "val" not in splits:
            raise ValueError("task.decision_rule=fitted fits its class offsets on downstream_val, "
                             "which this data does not have; use task.decision_rule=argmax")

    def _rows(self, name: str, frac: float) -> tuple[list, list]:
        """Rows used per split: the stratified label fraction of train (and of val); the
        cross-validated protocols fit on train + val."""
        train_rows = [("train", stratified_subset(self.y["train"], frac, self.seed))]
        val_rows = []
        if "val" in self.splits:
            val_rows = [("val", stratified_subset(self.y["val"], frac, self.seed) if frac < 1
                         else np.arange(len(self.y["val"])))]
        if (name in CV_PROTOCOLS and bool(self.task.get("fit_on_val", True)) and val_rows
                and not self.fitted_rule):
            train_rows, val_rows = train_rows + val_rows, []
        return train_rows, val_rows

    def run(self, name: str, frac: float) -> tuple[dict, np.ndarray]:
        """(metrics, test features) of protocol ``name`` at label fraction ``frac``."""
        args = OmegaConf.to_container(self.task.get("protocol_args", {}).get(name, {}) or {},
                                      resolve=True)
        train_rows, val_rows = self._rows(name, frac)
        merged = len(train_rows) > 1
        cap = args.get("max_samples")
        y_tr = _gather(self.y, train_rows)
        if name in FEATURE_PROTOCOLS and cap and len(y_tr) > int(cap):
            # the protocol would subsample this many (stratified, seeded) anyway: encode only those
            train_rows = _restrict(train_rows, np.sort(subsample_rows(y_tr, int(cap), self.seed)))
            y_tr = _gather(self.y, train_rows)
        y_te = self.y["test"]
        k = int(self.meta.get("num_classes") or (max(y_tr.max(), y_te.max()) + 1))
        extra = self.extra and name in FEATURE_PROTOCOLS
        log.info("downstream %s on %d labelled series (label_fraction %.3g%s%s), test %d",
                 name, len(y_tr), frac, ", train+val" if merged else "",
                 ", + extra features" if extra else "", len(y_te))
        f_te = self.features.get([("test", np.arange(len(y_te)))])
        fit = get_protocol(name)
        y_va = _gather(self.y, val_rows) if val_rows else None
        if name in FEATURE_PROTOCOLS:
            clf, scores, f_te, val_scores = self._fit_features(fit, train_rows, val_rows, y_tr, y_va,
                                                               f_te, k, args)
        else:
            x_va = _gather(self.x, val_rows) if val_rows else None
            clf = fit(self.model, _gather(self.x, train_rows), y_tr, num_classes=k,
                      val_x=x_va, val_y=y_va, seed=self.seed, device=self.device, **args)
            scores = clf.scores(self.x["test"])
            val_scores = clf.scores(x_va) if self.fitted_rule else None
        # SVM scores are decision values (margins), the others probabilities
        probs = bool(getattr(clf, "scores_are_probs", True))
        names = self.meta.get("class_names")
        offsets = None
        if self.fitted_rule:
            offsets = fit_class_offsets(as_log_scores(val_scores, probs), y_va,
                                        int(self.task.get("decision_min_support", 10)))
        metrics = rule_metrics(y_te, scores, offsets, names, scores_are_probs=probs)
        if offsets is not None:
            metrics["decision_rule"] = rule_record(offsets, names)
        if self.test_records is not None:
            decided = as_log_scores(scores, probs) + (0.0 if offsets is None else offsets)
            metrics["per_record"] = per_record_metrics(y_te, decided.argmax(1), self.test_records,
                                                       names or [str(i) for i in range(k)])
        metrics.update(protocol=name, label_fraction=frac, n_labelled=int(len(y_tr)),
                       encoder=self.encoder_label, extra_features=extra, test_split=self.report)
        return metrics, f_te

    def _fit_features(self, fit, train_rows, val_rows, y_tr, y_va, f_te, k, args):
        f_tr = self.features.get(train_rows)
        f_va = self.features.get(val_rows) if val_rows else None
        if self.extra:
            e = {s: v[2] for s, v in self.splits.items()}
            e_tr = _gather(e, train_rows)
            mu, sd = e_tr.mean(0), e_tr.std(0) + 1e-6
            f_tr = np.hstack([f_tr, (e_tr - mu) / sd])
            f_te = np.hstack([f_te, (e["test"] - mu) / sd])
            if f_va is not None:
                f_va = np.hstack([f_va, (_gather(e, val_rows) - mu) / sd])
        clf = fit(f_tr, y_tr, num_classes=k, val_features=f_va, val_y=y_va, seed=self.seed, **args)
        val_scores = clf.scores(f_va) if self.fitted_rule else None
        return clf, clf.scores(f_te), f_te, val_scores


def downstream_splits(arrays_of_split, data_name: str) -> tuple[dict, str]:
    """{"train"|"val"|"test": (x, y, extra)} from ``arrays_of_split(split)`` (None when the
    data lacks it) and the name the test metrics are reported under ("val" when the data
    has no test split)."""
    splits = {s: arrays_of_split(s) for s in ("train", "val", "test")}
    report = "test"
    if splits["test"] is None and splits["val"] is not None:
        # e.g. TF-C's Epilepsy ships train/val only: the validation split is the test set,
        # so nothing may select on it (no early stopping, no fit on val)
        log.warning("data=%s has no downstream test split: reporting on downstream_val "
                    "(metrics.json 'val', test_split: val); the protocol gets no "
                    "validation split", data_name)
        splits["test"], splits["val"] = splits["val"], None
        report = "val"
    if splits["train"] is None or splits["test"] is None:
        raise ValueError(f"data={data_name} provides no labelled downstream_train and "
                         "downstream_test (or downstream_val) splits for the downstream protocol")
    return {s: v for s, v in splits.items() if v is not None}, report


class _ForecastInput:
    """Encodes the full input series whatever array the protocol passes (the protocol
    reads targets from its own array; the encoder sees covariates + every channel)."""

    def __init__(self, model, data):
        self.model, self.data = model, data

    def encode(self, _x, **kw):
        return self.model.encode(self.data, **kw)


def evaluate_forecast(model, series, horizons, padding: int, batch_size: int, seed: int) -> dict:
    """TS2Vec's protocol on a ``ForecastSeries`` (data_provider/pretraining.py): ridge on
    causal sliding representations, per horizon; MSE/MAE on the scaled test rows."""
    from .ridge_forecast import evaluate_forecasting
    data = series.data
    # forecast the target channels only: the covariates stay inputs
    target = np.concatenate([data[..., :series.covariates], data[..., series.targets]], axis=-1)
    res = evaluate_forecasting(_ForecastInput(model, data), target, series.train, series.val,
                               series.test, horizons, n_covariate_cols=series.covariates,
                               padding=padding, batch_size=batch_size, seed=seed)
    test = {str(h): v for h, v in res.items()}
    test.update(mse=float(np.mean([v["mse"] for v in res.values()])),
                mae=float(np.mean([v["mae"] for v in res.values()])))
    return test
