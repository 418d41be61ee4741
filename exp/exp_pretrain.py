"""Self-supervised pretraining (task=pretrain) and the evaluation of the frozen encoder.

This class only orchestrates:
- the pretraining set is shaped from the data family's splits by data_provider/pretraining.py
  (unlabelled series with NaN for unobserved entries, TS2Vec's sections of long series, the
  semi-supervised labels of a ``uses_labels`` model, TS2Vec's forecasting series);
- the model is a representation model (models/ssl/base.py: ``RepresentationModel``), trained
  by the shared loop of Exp_Basic; ``trainer.max_steps=auto`` is TS2Vec's 200/600 rule with
  the values the model class counts (utils/budget.py); a model's ``batch_groups`` makes
  training batches of whole groups (COMET's trials);
- test() loads the ``task.encoder`` (last | best) weights and hands the frozen encoder to
  utils/protocols/evaluation.py (task.protocol, task.label_fraction, task.evaluations, the
  appended per-sample features; TS2Vec's ridge protocol on forecasting data). Metrics of the
  downstream test split go to metrics.json under "test" (under "val" with
  ``"test_split": "val"`` for data without a test split), the test representations with their
  labels to TensorBoard's embedding projector.

``task.pretrained=<run dir>/checkpoints/last.pt`` skips pretraining and evaluates the encoder
an earlier task=pretrain run saved (same model and data overrides), e.g. with other protocols,
at the cost of the evaluation alone.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from data_provider.base import ArrayDataset, DataBundle
from data_provider.pretraining import (forecast_pretraining_data, labels_of, pretraining_data,
                                       semi_supervised_data, series_with_nan)
from exp.exp_basic import Exp_Basic
from models.ssl.base import RepresentationModel
from utils.budget import TrainingBudget, resolve_budget
from utils.checkpoint import checkpoint_file, load_checkpoint
from utils.protocols import check_model_supports
from utils.protocols.evaluation import (DownstreamEvaluation, check_task, downstream_splits,
                                        evaluate_forecast, evaluation_key, parse_evaluations,
                                        protocols_of)
from utils.runtime import release_free_memory

log = logging.getLogger(__name__)

FORECAST_FAMILIES = ("ett", "custom")


def check_model_class(model_class: type, cfg) -> None:
    """task=pretrain trains representation models; forecasting data also needs TS2Vec's causal
    sliding encoding. Refused before any data is read."""
    is_repr = issubclass(model_class, RepresentationModel)
    if str(cfg.data.family) in FORECAST_FAMILIES and not (is_repr and model_class.sliding_encode):
        raise TypeError(f"data={cfg.data.name} is evaluated with TS2Vec's forecasting protocol, "
                        "which needs encode(..., causal=True, sliding_length=1, sliding_padding=) "
                        f"(per-step causal representations); model={cfg.model.name} has no "
                        "such mode: use model=ts2vec or timesurl, or a classification dataset")
    if not is_repr:
        raise TypeError(f"model={cfg.model.name} ({model_class.__name__}) is not a representation "
                        "model; task=pretrain trains and evaluates those (models/ssl/base.py: "
                        "RepresentationModel)")


class Exp_Pretrain(Exp_Basic):
    def __init__(self, cfg, run_dir):
        check_task(cfg.task)                   # fail before any work, not after pretraining
        self.model_class = get_class(str(cfg.model._target_))
        check_model_class(self.model_class, cfg)
        # an earlier run's encoder to evaluate instead of pretraining (None: pretrain)
        self.pretrained = (checkpoint_file(cfg.task.pretrained, "task.pretrained", "a task=pretrain run")
                           if cfg.task.get("pretrained") else None)
        self.forecast = None                   # TS2Vec's forecasting series (forecasting data)
        super().__init__(cfg, run_dir)
        self._check_protocols()
        groups = None if self.forecast is not None else \
            self.model.batch_groups(self.data.splits["train"].arrays)
        if groups is not None:
            groups = torch.as_tensor(groups).cpu()
            log.info("training batches hold whole groups of consecutive samples (%d groups of %d series)",
                     len(torch.unique_consecutive(groups)), len(groups))
        self.loaders.groups = groups

    def _check_protocols(self) -> None:
        """What the protocols need of the model, checked now rather than after pretraining."""
        cfg = self.cfg
        check_model_supports(protocols_of(cfg.task), self.model, cfg.model.name)
        frac = float(cfg.task.get("label_fraction", 1.0))
        if self.model.uses_labels and any(f != frac for _, f in parse_evaluations(cfg.task.get("evaluations"))):
            log.warning("model=%s pretrains with the labels of task.label_fraction=%g: the "
                        "task.evaluations at other fractions evaluate an encoder that saw a "
                        "different number of labels than they are given", cfg.model.name, frac)

    # ------------------------------------------------------------------ data and budget
    def _get_data(self) -> DataBundle:
        bundle = super()._get_data()
        cfg, max_len = self.cfg, self.cfg.model.get("max_train_length")
        if str(cfg.data.family) in FORECAST_FAMILIES:
            bundle, self.forecast = forecast_pretraining_data(bundle, max_len)
            return bundle
        if self.model_class.uses_labels:
            return semi_supervised_data(bundle, float(cfg.task.get("label_fraction", 1.0)),
                                        int(cfg.seed), max_len, cfg.model.name, cfg.data.name)
        return pretraining_data(bundle, cfg.task.get("pretrain_splits", ["train"]), max_len,
                                cfg.data.name)

    def _resolve_budget(self) -> TrainingBudget:
        values = self.model_class.budget_values(int(self.meta["pretrain_values"]),
                                                int(self.meta["in_channels"]))
        return resolve_budget(self.cfg.trainer, len(self.data.splits["train"]),
                              self._steps_per_epoch, auto_values=values, cap_batch=True)

    # ------------------------------------------------------------------ training
    def train(self) -> dict:
        if self.pretrained is not None:
            self._load_pretrained(self.pretrained)
            return dict(self.state)
        return super().train()

    def _load_pretrained(self, path: Path) -> None:
        """The weights of an earlier pretraining run instead of pretraining again."""
        ckpt = load_checkpoint(path, map_location=self.device)
        name = OmegaConf.select(OmegaConf.create(ckpt.get("config") or "{}"), "model.name")
        if name is not None and name != self.cfg.model.name:
            raise ValueError(f"task.pretrained={path} holds a model={name} encoder, not "
                             f"model={self.cfg.model.name}; pass model={name}")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ValueError(f"task.pretrained={path} does not fit model={self.cfg.model.name} as "
                             f"configured here ({first}); pass the model.* and data overrides of "
                             "the run that wrote it") from None
        # its step count and pretraining wall time describe this encoder (metrics.json)
        self.state.update({k: v for k, v in (ckpt.get("state") or {}).items()
                           if k in ("epoch", "step", "train_seconds", "train_loop_seconds")})
        log.info("task.pretrained: evaluating the encoder of %s (%d pretraining steps); "
                 "no pretraining in this run", path, self.state["step"])

    def _process_one_batch(self, batch: dict, train: bool):
        outputs = self.net(batch)
        loss = self.criterion(outputs, batch)
        # per-batch outputs (crops of random length) are not gathered over a split
        return loss, {}

    # ------------------------------------------------------------------ evaluation
    def _downstream(self, split: str):
        """(x with NaN for unobserved, y, extra per-sample features or None) of a split, or
        None when the data has no such labelled split."""
        ds = self.data.splits.get(f"downstream_{split}")
        if ds is None or len(ds) == 0:
            return None
        feats = ds.arrays.get("features") if isinstance(ds, ArrayDataset) else None
        feats = None if feats is None else feats.float().cpu().numpy()
        return series_with_nan(ds), labels_of(ds), feats

    def _test_records(self, report: str) -> np.ndarray | None:
        """The recording of each reported sample, where the data carries one (MIT-BIH)."""
        ds = self.data.splits.get(f"downstream_{report}")
        records = getattr(ds, "arrays", {}).get("record") if ds is not None else None
        return None if records is None else np.asarray(records)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        pooling = self.cfg.task.get("pooling", "max")
        bs = int(self.cfg.trainer.eval_batch_size)
        features = np.asarray(self.model.encode(x, pooling=pooling, batch_size=bs))
        release_free_memory()            # the encoder's activations, before the protocol's fit
        return features

    def test(self) -> dict:
        task = self.cfg.task
        which = str(task.get("encoder", "last"))
        if self.pretrained is not None:
            which = f"pretrained:{self.pretrained}"
        else:
            self.load_weights(which)
        self.model.eval()
        if self.forecast is not None:
            return self._test_forecast(which)
        splits, report = downstream_splits(self._downstream, self.cfg.data.name)
        evaluations = parse_evaluations(task.get("evaluations"))
        # several evaluations encode every split once and share the features
        evaluation = DownstreamEvaluation(task, splits, self._encode, self.model, self.meta,
                                          int(self.cfg.seed), self.device, which, report,
                                          whole=bool(evaluations),
                                          test_records=self._test_records(report))
        metrics, f_te = evaluation.run(str(task.protocol), float(task.get("label_fraction", 1.0)))
        self._log_embedding(f_te[:, :self.model.repr_dim], splits["test"][1])
        results = {report: metrics, "test_split": report}
        if evaluations:
            results["evaluations"] = {}
            for name, frac in evaluations:
                key = evaluation_key(name, frac)
                results["evaluations"][key], _ = evaluation.run(name, frac)
                log.info("evaluation %s: %s", key, self._summary(results["evaluations"][key]))
        if report != "test":
            log.info("%s (no test split): %s", report, self._summary(metrics))
        return self.finish(results)

    def _test_forecast(self, which: str) -> dict:
        task = self.cfg.task
        test = evaluate_forecast(self.model, self.forecast,
                                 list(task.get("pred_lens") or [int(self.cfg.data.pred_len)]),
                                 padding=int(task.get("forecast_padding", 200)),
                                 batch_size=int(self.cfg.trainer.eval_batch_size),
                                 seed=int(self.cfg.seed))
        test.update(protocol="ridge", encoder=which)
        results = {"test": test}
        return self.finish(results)

    def _log_embedding(self, features: np.ndarray, y: np.ndarray) -> None:
        limit = int(self.cfg.task.get("embedding_limit", 2000) or 0)
        if limit <= 0:
            return
        idx = np.arange(len(y))
        if len(idx) > limit:
            idx = np.sort(np.random.default_rng(int(self.cfg.seed)).choice(idx, limit, replace=False))
        names = self.meta.get("class_names")
        labels = [str(names[i]) if names is not None else str(i) for i in y[idx]]
        self.tb.embedding(torch.as_tensor(features[idx]), labels, tag="test_representations",
                          step=int(self.state["step"]))
