"""Imputation: values of each window are hidden (task.mask, task.mask_rate) and the model
reconstructs them. A batch is {"x" [B, seq_len, C], "index", maybe "x_mark"}: the windows of
data=ett / data=custom (every start, no horizon), or of data=ecg, the MIT-BIH records cut into
non-overlapping data.ssl_window_seconds windows (DS1 train / validation records, DS2 to test).

Only what differs from the shared loop is here: the masks (utils/imputation.py; fresh at every
training step, fixed per window for validation and test), the model's input (the window with
its hidden values set to 0, so a model never sees them), the errors on the hidden values
beside the linear-interpolation and window-mean baselines, and a figure.

Two kinds of model: a reconstruction model ``forward(x, [x_mark]) -> [B, T, C]`` trained with
the loss on the hidden values; and a generative imputer (``imputes_by_sampling``, e.g. DDPM),
whose ``forward(x, observed=...)`` returns its own training outputs for its own loss (the
complete window goes in: the model's loss decides what it may look at), and whose
``impute(x_observed, observed)`` samples the hidden values at test time. Validation of a
generative imputer is its training loss (sampling every epoch would cost the run's time); the
test split is imputed and scored.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
from omegaconf import open_dict

from data_provider.base import DataBundle
from exp.exp_basic import Exp_Basic
from models.base import hooks_of
from utils.forecast_metrics import inverse_transform
from utils.imputation import BASELINES, check_mask, draw_hidden, evaluation_hidden, hidden_errors
from utils.instantiate import build
from utils.losses.imputation import HiddenMSE


TEST_SEED_OFFSET = 7919


class Exp_Impute(Exp_Basic):
    def _get_data(self):
        d, t = self.cfg.data, self.cfg.task
        family = str(d.get("family", ""))
        if family not in ("ett", "custom", "ecg"):
            raise ValueError(f"task=impute reads windows of a long recording: data=ett, data=custom "
                             f"or data=ecg (MIT-BIH records), not data={d.name}")
        if str(d.get("features", "M")).upper() == "MS":
            raise ValueError("task=impute reconstructs every channel it is given; use "
                             "data.features=M (all channels) or S (the target alone), not MS")
        check_mask(str(t.mask), float(t.mask_rate))
        self._split = "val"
        with open_dict(d):
            if family == "ecg":         # whole records cut into windows, DS1 -> DS2
                d.ssl_unit, d.test_windows = "window", True
            else:                       # a window is all there is: no horizon
                d.pred_len, d.label_len = 0, 0
        bundle = super()._get_data()
        if family == "ecg":
            splits = {s: bundle.splits[f"unlabelled_{s}"] for s in ("train", "val", "test")}
            meta = {**bundle.meta, "seq_len": bundle.meta["unlabelled_seq_len"], "enc_in": 1, "c_out": 1}
            meta.pop("num_classes", None)          # windows carry no beat labels
            bundle = DataBundle(splits=splits, meta=meta)
        return bundle

    def _build_model(self):
        model = build(self.cfg.model, **self._model_dims())
        self._generative = hooks_of(model).imputes_by_sampling
        self._takes_marks = "x_mark" in inspect.signature(model.forward).parameters
        return model

    # ------------------------------------------------------------------ masks
    def _hidden(self, batch: dict, train: bool) -> torch.Tensor:
        x, t = batch["x"], self.cfg.task
        if train:
            return draw_hidden(tuple(x.shape), str(t.mask), float(t.mask_rate), device=x.device)
        # validation and test windows share indices: their masks come from different seeds
        seed = int(t.eval_mask_seed) + (0 if self._split == "val" else TEST_SEED_OFFSET)
        return evaluation_hidden(batch["index"].cpu(), x.shape[1], x.shape[2], str(t.mask),
                                 float(t.mask_rate), seed).to(x.device)

    # ------------------------------------------------------------------ one batch
    def _process_one_batch(self, batch: dict, train: bool):
        x = batch["x"]
        hidden = self._hidden(batch, train)
        marks = {"x_mark": batch["x_mark"]} if self._takes_marks and "x_mark" in batch else {}
        x_in = x.masked_fill(hidden, 0.0)
        # a generative imputer samples on the test split only; elsewhere its own training loss
        if self._generative and (train or self._split != "test"):
            return self.criterion(self.net(x, observed=~hidden, **marks), batch), {}
        outputs = {"true": x, "hidden": hidden}
        if self._generative:        # its criterion is its training loss; scored as any imputer
            outputs["pred"] = self.model.impute(x_in, ~hidden, **marks)
            loss = HiddenMSE()(outputs, batch)
        else:
            outputs["pred"] = self.net(x_in, **marks)
            loss = self.criterion(outputs, batch)
        return loss, {**outputs, "index": batch["index"]}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str, log_figures: bool = True) -> dict:
        self._split = split
        return super().evaluate(split, log_figures)

    def _metrics(self, collected, split):
        if "pred" not in collected:
            return {}
        pred, true, hidden = collected["pred"], collected["true"], collected["hidden"].astype(bool)
        out = {**self._errors(pred, true, hidden), "windows": int(len(pred)),
               "hidden_values": int(hidden.sum())}
        observed = np.where(hidden, 0.0, true)          # a baseline sees only what the model saw
        for name, fill in BASELINES.items():
            out[f"baseline_{name}"] = self._errors(fill(observed, hidden), true, hidden)
        return out

    def _errors(self, pred, true, hidden) -> dict:
        """MSE / MAE on the hidden values; on a scaled series also in its original units."""
        scaler, idx = self.meta.get("scaler"), self.meta.get("out_index")
        out = hidden_errors(pred, true, hidden)
        if scaler is not None:
            out.update(hidden_errors(inverse_transform(pred, scaler, idx),
                                     inverse_transform(true, scaler, idx), hidden, prefix="orig_"))
        return out

    def _log_evaluation(self, collected, split, metrics):
        n = int(self.cfg.task.get("plot_windows", 4))
        if split != "test" or n <= 0 or "pred" not in collected:
            return
        from utils.impute_figures import imputation_figure
        pred, true, hidden = collected["pred"], collected["true"], collected["hidden"].astype(bool)
        picks = np.linspace(0, len(pred) - 1, min(n, len(pred))).astype(int)
        channel = int(self.meta.get("target_index", true.shape[-1] - 1))
        name = list(self.meta.get("columns", []))[channel] if self.meta.get("columns") else channel
        fig = imputation_figure(true[picks, :, channel], pred[picks, :, channel], hidden[picks, :, channel],
                                title=f"{split}: {name} (scaled)")
        self.tb.figure(f"{split}/imputation", fig, self.state["step"])
