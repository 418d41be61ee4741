"""Generation: train a class-conditional generative model (a model with ``sample``, e.g.
model=ddpm) on a labelled dataset (data=ecg, ucr or uea; a batch is {"x" [B, T, C], "y", ...}),
draw a synthetic set per class and score it against the real series.

Training is the shared loop on the model's own loss (DDPM: the denoising MSE); validation is
that loss on the validation split, with the same random timesteps and noise at every
evaluation. The test loads best.pt and draws, with a generator seeded from ``seed``, as many
series per class as the training split holds (clipped to task.samples_per_class_min..max),
then scores them (utils/generation_metrics.py):

- TSTR (train on synthetic, test on real; Esteban, Hyland & Rätsch 2017): a classifier
  (task.classifier) trained on the generated set and tested on the real test split, beside
  TRTR, the same classifier, budget and seed trained on the real training split;
- the discriminative score (Yoon, Jarrett & van der Schaar, TimeGAN, NeurIPS 2019): a 2-class
  classifier told real training series from generated ones, as many of each per class,
  80 / 20 split; |held-out accuracy - 0.5|, 0 = indistinguishable;
- the Fréchet distance (as FID, Heusel et al. 2017) between real test and generated series in
  the space of the TRTR classifier's pooled features, beside the same distance between the
  real training and test series (the floor to read it against).

Writes, in the run directory: generated.npz (x float32 [N, T, C], y int64 [N]), metrics.json
(test: loss, tstr, trtr, discriminative, frechet, generated_per_class) and a TensorBoard
figure of real beside generated series per class (test/real_vs_generated).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import open_dict

from exp.exp_basic import Exp_Basic
from utils.atomic import save_npz_atomic
from utils.generation_metrics import (FitSettings, classifier_scores, discriminative_score,
                                      frechet_distance, matched_by_class, pooled_features,
                                      samples_per_class)
from utils.instantiate import accepted_kwargs, build

log = logging.getLogger(__name__)

LABELLED_DATA = "data=ecg, data=ucr or data=uea"
CLASSES_PER_FIGURE = 8


class Exp_Generate(Exp_Basic):
    # ------------------------------------------------------------------ setup
    def _build_model(self):
        self._check_data()
        self._check_task()
        model_cfg, k = self.cfg.model, int(self.meta["num_classes"])
        target = get_class(str(model_cfg._target_))
        name = model_cfg.get("name", model_cfg._target_)
        if not callable(getattr(target, "sample", None)):
            raise ValueError(f"model={name} has no sample(n, y) to draw new series; task=generate "
                             "needs a generative model such as model=ddpm")
        if not accepted_kwargs(target, {"num_classes": k}):
            raise ValueError(f"model={name} takes no num_classes, so it cannot draw series of a "
                             "given class; task=generate samples each class of the data (TSTR "
                             "needs the labels): use a class-conditional model such as model=ddpm")
        given = model_cfg.get("num_classes")
        if given not in (None, 0) and int(given) != k:
            raise ValueError(f"model.num_classes={given} but data={self.cfg.data.name} has {k} "
                             "classes; leave model.num_classes at 0 (task=generate sets it from the data)")
        # class-conditional on the data's classes (a model config's 0 means "unconditional");
        # nothing is observed when a series is drawn, so no imputation conditioning
        with open_dict(model_cfg):
            model_cfg.num_classes = k
            if "conditional_imputation" in model_cfg:
                model_cfg.conditional_imputation = False
        dims = {"enc_in": int(self.meta["in_channels"]), **self._model_dims()}
        return build(model_cfg, **dims)

    def _check_data(self) -> None:
        name = self.cfg.data.name
        if "num_classes" not in self.meta:
            raise ValueError(f"data={name} has no class labels (its meta has no num_classes); "
                             f"task=generate learns and scores series per class: use a labelled "
                             f"dataset, {LABELLED_DATA}")
        if self.meta.get("variable_length") or self.meta.get("has_missing"):
            raise ValueError(f"data={self.meta.get('dataset', name)} holds series of unequal length "
                             "or with missing values; task=generate models complete series of one "
                             "length: choose a dataset without either")
        if not self.has_split("test"):
            raise ValueError(f"data={name} has no test split; task=generate scores the generated "
                             f"series against real test series: use {LABELLED_DATA}")

    def _check_task(self) -> None:
        """Settings the scores read after training, checked now so a wrong one costs no training."""
        t = self.cfg.task
        low, high = int(t.samples_per_class_min), int(t.samples_per_class_max)
        if not 0 <= low <= high or high < 1:
            raise ValueError(f"task.samples_per_class_min={low} and task.samples_per_class_max={high} "
                             "must satisfy 0 <= min <= max and max >= 1")
        if int(t.classifier_epochs) < 1 or float(t.classifier_lr) <= 0:
            raise ValueError(f"task.classifier_epochs={t.classifier_epochs} must be >= 1 and "
                             f"task.classifier_lr={t.classifier_lr} > 0")
        if not 0 < float(t.discriminative_train_fraction) < 1:
            raise ValueError(f"task.discriminative_train_fraction={t.discriminative_train_fraction} "
                             "must lie strictly between 0 and 1")
        with torch.random.fork_rng(devices=[]):   # a trial build; the model's init stays as it was
            self._classifier(2)                     # a wrong task.classifier fails now, not after training

    def _classifier(self, num_classes: int):
        """A scoring classifier from task.classifier, on the data's channels and length."""
        c, length = int(self.meta["in_channels"]), int(self.meta["seq_len"])
        return build(self.cfg.task.classifier, in_channels=c, enc_in=c, seq_len=length,
                     num_classes=num_classes)

    # ------------------------------------------------------------------ one batch
    def _process_one_batch(self, batch: dict, train: bool):
        outputs = self.net(batch["x"], y=batch["y"])
        return self.criterion(outputs, batch), {}

    def evaluate(self, split: str, log_figures: bool = True) -> dict:
        """The loss at random timesteps and noise: the same draw at every evaluation, so epochs
        compare on equal terms, and the training's random stream is left as it was."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.cfg.seed))
            return super().evaluate(split, log_figures)

    # ------------------------------------------------------------------ test
    def test(self) -> dict:
        self.load_weights("best")
        results = {split: self.evaluate(split) for split in ("val", "test") if self.has_split(split)}
        train, test = self._split_arrays("train"), self._split_arrays("test")
        names = [str(n) for n in self.meta.get("class_names") or range(int(self.meta["num_classes"]))]
        t = self.cfg.task
        counts = samples_per_class(train["y"], len(names), int(t.samples_per_class_min),
                                   int(t.samples_per_class_max))
        x_gen, y_gen = self.generate(counts)
        save_npz_atomic({"x": x_gen, "y": y_gen}, self.run_dir / "generated.npz")
        self._log_figures(train["x"], train["y"], x_gen, y_gen, names)
        scores = self.score(train, test, x_gen, y_gen, names)
        results["test"] = {**results["test"], **scores,
                           "generated_per_class": dict(zip(names, counts.tolist()))}
        return self.finish(results)

    @torch.inference_mode()
    def generate(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """counts[c] series of class c, in batches of trainer.eval_batch_size, all noise from one
        generator seeded by ``seed``: (x float32 [N, T, C], y int64 [N]), ordered by class.
        In float32 whatever trainer.precision: the reverse chain adds up many small steps."""
        t0 = time.perf_counter()
        y_all = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
        shape = (int(self.meta["seq_len"]), int(self.meta["in_channels"]))
        generator = torch.Generator(device=self.device).manual_seed(int(self.cfg.seed))
        self.model.eval()
        parts, batch = [], int(self.cfg.trainer.eval_batch_size)
        for start in range(0, len(y_all), batch):
            y = torch.as_tensor(y_all[start:start + batch], device=self.device)
            x = self.model.sample(len(y), y=y, generator=generator)
            if tuple(x.shape) != (len(y), *shape):
                raise ValueError(f"model={self.cfg.model.get('name')}.sample({len(y)}) returned shape "
                                 f"{tuple(x.shape)}; expected [n, seq_len, channels] = {(len(y), *shape)}")
            parts.append(x.float().cpu().numpy())
        x_all = np.concatenate(parts) if parts else np.zeros((0, *shape), np.float32)
        bad = int((~np.isfinite(x_all).reshape(len(x_all), -1).all(1)).sum())
        if bad:
            raise FloatingPointError(f"{bad} of {len(x_all)} generated series hold NaN or inf: the "
                                     "model diverged; lower optimizer.lr or set trainer.grad_clip")
        log.info("generated %d series (%s per class) in %.1fs", len(x_all),
                 ", ".join(str(int(c)) for c in counts), time.perf_counter() - t0)
        return x_all.astype(np.float32), y_all

    def score(self, train: dict, test: dict, x_gen: np.ndarray, y_gen: np.ndarray,
              names: list[str]) -> dict:
        """TSTR and TRTR, the discriminative score and the Fréchet distances."""
        t, seed = self.cfg.task, int(self.cfg.seed)
        settings = FitSettings(epochs=int(t.classifier_epochs), lr=float(t.classifier_lr),
                               batch_size=int(self.cfg.trainer.batch_size),
                               eval_batch_size=int(self.cfg.trainer.eval_batch_size),
                               device=self.device, seed=seed)
        t0 = time.perf_counter()
        tstr, _ = classifier_scores(self._classifier, x_gen, y_gen, test["x"], test["y"], names, settings)
        trtr, trtr_model = classifier_scores(self._classifier, train["x"], train["y"], test["x"],
                                             test["y"], names, settings)
        real_idx, gen_idx = matched_by_class(train["y"], y_gen, seed)
        discriminative = discriminative_score(self._classifier, train["x"][real_idx], x_gen[gen_idx],
                                              settings, float(t.discriminative_train_fraction))
        features = {k: pooled_features(trtr_model, x, settings)
                    for k, x in (("train", train["x"]), ("test", test["x"]), ("generated", x_gen))}
        frechet = {"generated_vs_test": frechet_distance(features["test"], features["generated"]),
                   "train_vs_test": frechet_distance(features["test"], features["train"]),
                   "feature_dim": int(features["test"].shape[1])}
        log.info("TSTR accuracy %.4f macro-F1 %.4f | TRTR accuracy %.4f macro-F1 %.4f | "
                 "discriminative score %.4f | Fréchet %.4g (real train vs test %.4g) | %.1fs",
                 tstr["accuracy"], tstr["macro_f1"], trtr["accuracy"], trtr["macro_f1"],
                 discriminative["score"], frechet["generated_vs_test"], frechet["train_vs_test"],
                 time.perf_counter() - t0)
        return {"tstr": tstr, "trtr": trtr, "discriminative": discriminative, "frechet": frechet}

    def _log_figures(self, x_real, y_real, x_gen, y_gen, names: list[str]) -> None:
        n = int(self.cfg.task.get("plot_series", 4))
        if n <= 0:
            return
        from utils.generation_figures import real_vs_generated_figure
        starts = range(0, len(names), CLASSES_PER_FIGURE)
        for part, start in enumerate(starts):
            classes = range(start, min(start + CLASSES_PER_FIGURE, len(names)))
            fig = real_vs_generated_figure([x_real[y_real == c][:n, :, 0] for c in classes],
                                           [x_gen[y_gen == c][:n, :, 0] for c in classes],
                                           [names[c] for c in classes],
                                           title=f"{self.cfg.data.name}: real (training) vs generated, channel 0")
            tag = "test/real_vs_generated" if len(starts) == 1 else f"test/real_vs_generated/{part}"
            self.tb.figure(tag, fig, self.state["step"])
