"""Long-horizon forecasting (Informer / PatchTST / Crossformer): a batch is
{"x" [B, seq_len, C_in], "y" [B, label_len + pred_len, C_out], "x_mark", "y_mark", "index"}.

Only what differs from the shared loop is here: the decoder input (Informer's start token:
the last label_len known steps, then pred_len zeros), the error metrics on the scaled and the
original scale, a figure of forecasts against the truth, and forecasting past the end of the
file (task.predict_future=true -> forecast.csv in the run directory).
"""
from __future__ import annotations

import inspect
import logging

import numpy as np
import pandas as pd
import torch

from exp.exp_basic import Exp_Basic
from utils.atomic import write_text_atomic
from utils.forecast_metrics import forecast_metrics, inverse_transform
from utils.instantiate import build

log = logging.getLogger(__name__)

# Optional inputs a forecaster's forward may take by name, besides x. "future" (the true
# horizon [B, pred_len, C]) is passed in training only: a model trained by teacher forcing
# (models/gpt_forecaster.py) never sees it when it is evaluated.
MODEL_INPUTS = ("x_mark", "x_dec", "y_mark", "future")


class Exp_Forecast(Exp_Basic):
    def _build_model(self):
        for k in ("pred_len", "label_len", "c_out"):
            if k not in self.meta:
                raise ValueError(f"data={self.cfg.data.name} is not a forecasting dataset (meta has "
                                 f"no {k}); task=forecast needs data=ett or data=custom")
        embed = self.cfg.model.get("embed")
        if embed in ("fixed", "learned") and int(self.cfg.data.get("timeenc", 1)) != 0:
            raise ValueError(f"model.embed={embed} embeds calendar fields; set data.timeenc=0 "
                             "(or use model.embed=timeF with data.timeenc=1)")
        # model.pretrained (PatchTST): the constructor loads the pretrained backbone
        model = build(self.cfg.model, **self._model_dims())
        params = inspect.signature(model.forward).parameters
        self._inputs = [k for k in MODEL_INPUTS if k in params]
        return model

    # ------------------------------------------------------------------ one batch
    def _decoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """Start token (last label_len input steps) followed by pred_len zeros."""
        label_len, pred_len = int(self.meta["label_len"]), int(self.meta["pred_len"])
        zeros = x.new_zeros(x.shape[0], pred_len, x.shape[2])
        return torch.cat([x[:, x.shape[1] - label_len:], zeros], dim=1)

    def _forward(self, x, x_mark=None, y_mark=None, future=None):
        available = {"x_mark": x_mark, "y_mark": y_mark, "future": future}
        if "x_dec" in self._inputs:
            available["x_dec"] = self._decoder_input(x)
        return self.net(x, **{k: available[k] for k in self._inputs if available.get(k) is not None})

    def _process_one_batch(self, batch: dict, train: bool):
        c_out, pred_len = int(self.meta["c_out"]), int(self.meta["pred_len"])
        future = batch["y"][:, -pred_len:] if train else None
        out = self._forward(batch["x"], batch.get("x_mark"), batch.get("y_mark"), future)
        # the model's own targets: PatchTST's masked-patch pretraining, teacher forcing in training
        if isinstance(out, dict):
            return self.criterion(out, batch), {}
        if isinstance(out, tuple):  # (forecast, attention maps)
            out = out[0]
        pred = out[..., out.shape[-1] - c_out:]   # channel-independent models forecast every input
        true = batch["y"][:, -pred_len:]
        loss = self.criterion({"pred": pred, "true": true}, batch)
        return loss, {"pred": pred, "true": true, "index": batch["index"]}

    # ------------------------------------------------------------------ evaluation
    def _metrics(self, collected, split):
        if "pred" not in collected:
            return {}
        pred, true = collected["pred"], collected["true"]
        scaler, idx = self.meta.get("scaler"), self.meta.get("out_index")
        return {**forecast_metrics(pred, true),
                **forecast_metrics(inverse_transform(pred, scaler, idx),
                                   inverse_transform(true, scaler, idx), prefix="orig_"),
                "windows": int(len(pred))}

    def _log_evaluation(self, collected, split, metrics):
        n = int(self.cfg.task.get("plot_windows", 4))
        if split != "test" or n <= 0 or "pred" not in collected:
            return
        from utils.forecast_figures import forecast_figure
        ds = self.data.splits[split]
        picks = np.linspace(0, len(collected["pred"]) - 1, min(n, len(collected["pred"]))).astype(int)
        history = [ds[int(collected["index"][i])]["x"][:, -1].numpy() for i in picks]
        fig = forecast_figure(history, collected["true"][picks, :, -1], collected["pred"][picks, :, -1],
                              title=f"{split}: {self.meta.get('out_columns', ['target'])[-1]} (scaled)")
        self.tb.figure(f"{split}/forecast", fig, self.state["step"])

    def test(self) -> dict:
        results = super().test()
        if self.cfg.task.get("predict_future", False):
            self.predict_future()
        return results

    @torch.no_grad()
    def predict_future(self) -> pd.DataFrame:
        """Forecast the pred_len steps after the last row of the file; write forecast.csv."""
        fut = self.meta.get("future")
        if fut is None:
            raise ValueError("this dataset gives no final window (meta['future']); "
                             "task.predict_future needs data=ett or data=custom")
        self.model.eval()
        x = fut["x"].to(self.device)
        with self._autocast():
            out = self._forward(x, fut["x_mark"].to(self.device), fut["y_mark"].to(self.device))
        out = out[0] if isinstance(out, tuple) else out
        if isinstance(out, dict):
            raise ValueError("task.predict_future needs a forecasting model; this one returns "
                             f"{sorted(out)} (e.g. PatchTST in pretrain mode)")
        c_out = int(self.meta["c_out"])
        pred = out[..., out.shape[-1] - c_out:].float().cpu().numpy()[0]
        values = inverse_transform(pred, self.meta.get("scaler"), self.meta.get("out_index"))
        df = pd.DataFrame(values, columns=self.meta["out_columns"])
        df.insert(0, "date", pd.DatetimeIndex(fut["dates"]).strftime("%Y-%m-%d %H:%M:%S"))
        path = self.run_dir / "forecast.csv"
        write_text_atomic(df.to_csv(index=False), path)
        log.info("wrote the %d-step forecast past %s to %s", len(df),
                 self.meta["dates"][-1], path)
        return df
