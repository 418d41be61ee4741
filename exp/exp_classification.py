"""Supervised classification: a batch is {"x", "y", optional "features", "mask"}."""
from __future__ import annotations

import inspect

import numpy as np
import torch

from exp.exp_basic import Exp_Basic
from utils.decision_rule import check_rule, fit_class_offsets, rule_metrics, rule_record
from utils.figures import confusion_matrix_figure
from utils.instantiate import build
from utils.metrics import per_record_metrics

# Optional batch keys a classifier's forward may take by name.
EXTRA_INPUTS = ("features", "mask", "x_mark")


class Exp_Classification(Exp_Basic):
    def _build_model(self):
        if "num_classes" not in self.meta:
            raise ValueError(f"data={self.cfg.data.name} provides no class labels (meta has no "
                             "num_classes); task=classification needs a labelled dataset")
        self.decision_rule = check_rule(self.cfg.task.get("decision_rule", "argmax"))
        if self.decision_rule == "fitted" and not self.has_split("val"):
            raise ValueError(f"task.decision_rule=fitted fits its class offsets on the validation "
                             f"split, which data={self.cfg.data.name} does not have; use "
                             "task.decision_rule=argmax")
        self.class_offsets = None             # set by test() under the fitted rule
        model = build(self.cfg.model, **self._model_dims())
        params = inspect.signature(model.forward).parameters
        self._extra_inputs = [k for k in EXTRA_INPUTS if k in params]
        return model

    def _select_criterion(self):
        """The loss, given the training class counts when it weighs classes by them (data
        families without meta["class_counts"] get them counted from the training labels)."""
        dims = self._model_dims()
        loss = self.cfg.loss
        if "class_counts" not in dims and (loss.get("class_weights") == "balanced"
                                           or loss.get("logit_adjustment")):
            y = self._split_arrays("train")["y"]
            dims["class_counts"] = np.bincount(y[y >= 0], minlength=int(self.meta["num_classes"])).tolist()
        return build(loss, **dims)

    def _forward(self, batch: dict, x: torch.Tensor) -> torch.Tensor:
        extra = {k: batch[k] for k in self._extra_inputs if k in batch}
        return self.net(x, **extra)

    def _process_one_batch(self, batch: dict, train: bool):
        alpha = float(self.cfg.trainer.get("mixup_alpha", 0.0) or 0.0)
        if train and alpha > 0:
            return self._mixup_batch(batch, alpha)
        logits = self._forward(batch, batch["x"])
        loss = self.criterion({"logits": logits}, batch) if "y" in batch else None
        outputs = {"logits": logits, "y": batch.get("y", torch.empty(0))}
        if not train and "record" in batch:          # MIT-BIH: figures per recording
            outputs["record"] = batch["record"]
        return loss, outputs

    def _mixup_batch(self, batch: dict, alpha: float):
        """Mixup (Zhang et al. 2018): convex combination of inputs (and extra features) of
        shuffled pairs, loss mixed with the same weight."""
        lam = float(np.random.beta(alpha, alpha))
        perm = torch.randperm(batch["x"].shape[0], device=batch["x"].device)
        mixed = dict(batch)
        mixed["x"] = lam * batch["x"] + (1 - lam) * batch["x"][perm]
        if "features" in batch:
            mixed["features"] = lam * batch["features"] + (1 - lam) * batch["features"][perm]
        logits = self._forward(mixed, mixed["x"])
        out = {"logits": logits}
        loss = lam * self.criterion(out, batch) + (1 - lam) * self.criterion(out, {**batch, "y": batch["y"][perm]})
        return loss, {"logits": logits, "y": batch["y"]}

    def test(self) -> dict:
        """Under task.decision_rule=fitted, the best checkpoint's validation logits fit the
        class offsets (utils/decision_rule.py) before val and test are evaluated with them;
        metrics.json keeps each split's plain argmax figures under "argmax"."""
        if self.decision_rule != "fitted":
            return super().test()
        self.load_weights("best")
        collected, _ = self._collect("val")
        self.class_offsets = fit_class_offsets(collected["logits"], collected["y"],
                                               int(self.cfg.task.get("decision_min_support", 10)))
        results = {split: self.evaluate(split) for split in ("val", "test") if self.has_split(split)}
        results["decision_rule"] = rule_record(self.class_offsets, self.meta.get("class_names"))
        return self.finish(results)

    def _metrics(self, collected, split):
        if "y" not in collected or collected["y"].size == 0:
            return {}
        names = self.meta.get("class_names")
        metrics = rule_metrics(collected["y"], collected["logits"], self.class_offsets, names)
        if "record" in collected:
            scores = collected["logits"] + (0.0 if self.class_offsets is None else self.class_offsets)
            metrics["per_record"] = per_record_metrics(
                collected["y"], scores.argmax(1), collected["record"],
                names or [str(i) for i in range(scores.shape[1])])
        return metrics

    def _log_evaluation(self, collected, split, metrics):
        if "confusion_matrix" in metrics and self.cfg.logger.get("confusion_matrix", True):
            names = self.meta.get("class_names") or [str(i) for i in range(len(metrics["confusion_matrix"]))]
            fig = confusion_matrix_figure(metrics["confusion_matrix"], names, f"{split} confusion matrix")
            self.tb.figure(f"{split}/confusion_matrix", fig, self.state["step"])
