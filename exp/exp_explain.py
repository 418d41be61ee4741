"""task=explain: saliency maps of a trained classifier and how faithful they are.

    python main.py task=explain task.checkpoint=<run dir>/checkpoints/best.pt

The model and the data are rebuilt from the trained run's own config (<run dir>/.hydra/
config.yaml, or the copy inside the checkpoint); this command only contributes where the
data lies (paths), the device and batch sizes (trainer), logging and the task.* settings.
For N test samples of each class it computes CAM, Grad-CAM, Guided Backprop and Guided
Grad-CAM (utils/explain), and writes into this run's directory:
    explain/<class>_<k>_idx<i>.png   trace over heatmap, one row per method (also TensorBoard),
                                     for task.figures_per_class samples of each class
    explain/class_profiles.png       per-class average saliency profile
    explanations.npz                 inputs, labels, predictions, raw maps, profiles, curves
    metrics.json                     deletion-curve AUC per method and for random order,
                                     over all explained samples and per true class
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from exp.exp_classification import Exp_Classification
from utils.checkpoint import checkpoint_file, load_checkpoint
from utils.instantiate import refuse_untrusted_targets
from utils.explain import (NoReLUModules, NotCAMCompatible, cam, class_profiles, curve_auc,
                           default_layer, deletion_curve, deletion_order, get_layer, gradcam,
                           guided_backprop, guided_gradcam, per_step, random_order)
from utils.explain.deletion import BASELINES, SCORES
from utils.explain.gradcam import LAYOUTS

log = logging.getLogger(__name__)

METHODS = ("cam", "gradcam", "guided_backprop", "guided_gradcam")
TITLES = {"cam": "CAM", "gradcam": "Grad-CAM", "guided_backprop": "Guided BP",
          "guided_gradcam": "Guided Grad-CAM"}
# Settings of this command that replace the trained run's: where data lies, hardware, logging.
FROM_THIS_RUN = ("paths", "trainer", "logger")


def checkpoint_path(task: DictConfig) -> Path:
    if OmegaConf.is_missing(task, "checkpoint") or not task.checkpoint:
        raise ValueError("task=explain needs the classifier to explain: "
                         "task.checkpoint=<run dir>/checkpoints/best.pt")
    return checkpoint_file(task.checkpoint, "task.checkpoint", "a task=classification run")


def check_settings(task: DictConfig) -> None:
    """task.* values that can be checked before any data is read."""
    unknown = sorted({str(m) for m in task.methods} - set(METHODS))
    if unknown or not task.methods:
        raise ValueError(f"task.methods={list(task.methods)}: unknown {unknown}; choose from "
                         f"{list(METHODS)}")
    d = task.deletion
    for key, value, allowed in (("task.deletion.baseline", d.baseline, BASELINES),
                                ("task.deletion.score", d.score, SCORES),
                                ("task.layout", task.layout, LAYOUTS)):
        if str(value) not in allowed:
            raise ValueError(f"{key}={value} is not valid; choose one of {', '.join(allowed)}")
    for key, value in (("task.samples_per_class", task.samples_per_class),
                       ("task.deletion.steps", d.steps),
                       ("task.deletion.random_repeats", d.random_repeats),
                       ("task.deletion.segment_len", d.segment_len)):
        if int(value) < 1:
            raise ValueError(f"{key}={value} must be a positive integer")


def trained_config(ckpt_path: Path) -> DictConfig:
    """The trained run's config: <run dir>/.hydra/config.yaml, else the copy in the checkpoint."""
    saved = ckpt_path.resolve().parent.parent / ".hydra" / "config.yaml"
    if saved.is_file():
        return OmegaConf.load(saved)
    ckpt = load_checkpoint(ckpt_path)
    if isinstance(ckpt.get("config"), str):
        log.warning("%s not found; using the config stored in %s", saved, ckpt_path)
        return OmegaConf.create(ckpt["config"])
    raise FileNotFoundError(f"cannot rebuild the model: neither {saved} nor a 'config' entry in "
                            f"{ckpt_path} exists; explain a checkpoint written by main.py")


class Exp_Explain(Exp_Classification):
    def __init__(self, cfg: DictConfig, run_dir):
        self.ckpt_path = checkpoint_path(cfg.task)
        check_settings(cfg.task)
        trained = trained_config(self.ckpt_path)
        refuse_untrusted_targets(trained, str(self.ckpt_path))   # a file's config is data
        trained_task = str(trained.task.name)
        if trained_task != "classification":
            raise ValueError(f"{self.ckpt_path} comes from a task={trained_task} run; task=explain "
                             f"explains classifiers (task=classification checkpoints)")
        for group in ("model", "data"):
            if group in cfg and cfg[group].get("name") != trained[group].get("name"):
                log.warning("%s=%s of this command is ignored: the checkpoint's run used %s "
                            "(pass the same %s= to name this run's directory after it)", group,
                            cfg[group].get("name"), trained[group].get("name"), group)
        merged = trained.copy()
        with open_dict(merged):
            for key in FROM_THIS_RUN:
                merged[key] = cfg[key]
            merged.task = cfg.task
        super().__init__(merged, run_dir)
        if self.cfg.task.layer:
            get_layer(self.model, str(self.cfg.task.layer))   # unknown name: fail before work

    # ------------------------------------------------------------------ samples
    def _labels(self, ds) -> np.ndarray:
        arrays = getattr(ds, "arrays", None)
        if isinstance(arrays, dict) and "y" in arrays:
            return arrays["y"].cpu().numpy().reshape(-1)
        return np.array([int(ds[i]["y"]) for i in range(len(ds))])

    def _pick(self, split: str) -> np.ndarray:
        """Up to samples_per_class dataset positions of each true class (seeded)."""
        if not self.has_split(split):
            raise ValueError(f"task.split={split} is empty or missing; splits: "
                             f"{', '.join(k for k in self.data.splits if self.has_split(k))}")
        if "y" not in self.data.splits[split][0]:
            raise ValueError(f"task.split={split} has no labels ('y'); explain a labelled split")
        labels = self._labels(self.data.splits[split])
        rng = np.random.default_rng(int(self.cfg.seed))
        n = int(self.cfg.task.samples_per_class)
        picked = [np.sort(rng.choice(np.flatnonzero(labels == c),
                                     min(n, int((labels == c).sum())), replace=False))
                  for c in range(int(self.meta["num_classes"]))]
        return np.concatenate(picked).astype(np.int64)

    def _batch(self, split: str, idx: np.ndarray) -> dict:
        ds = self.data.splits[split]
        if hasattr(ds, "__getitems__"):
            batch = ds.__getitems__(idx.tolist())
        else:
            batch = torch.utils.data.default_collate([ds[int(i)] for i in idx])
        return self._to_device(batch)

    def _targets(self, y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        target = str(self.cfg.task.target)
        names = [str(n) for n in self.meta.get("class_names") or []]
        if target == "predicted":
            return pred
        if target == "true":
            return y
        if target in names:
            return torch.full_like(y, names.index(target))
        if target.isdigit() and int(target) < int(self.meta["num_classes"]):
            return torch.full_like(y, int(target))
        raise ValueError(f"task.target={target} is not valid; use predicted, true, a class "
                         f"name ({', '.join(names)}) or a class index")

    # ------------------------------------------------------------------ explain
    def _explain(self, x, target, kw, methods, layer) -> dict[str, torch.Tensor]:
        t = self.cfg.task
        maps = {}
        if "cam" in methods:
            maps["cam"] = cam(self.model, x, target, kw)
        if {"gradcam", "guided_gradcam"} & set(methods):
            maps["gradcam"] = gradcam(self.model, x, target, layer, kw, layout=str(t.layout))
        if {"guided_backprop", "guided_gradcam"} & set(methods):
            maps["guided_backprop"] = guided_backprop(self.model, x, target, kw)
        if "guided_gradcam" in methods:
            maps["guided_gradcam"] = guided_gradcam(maps["guided_backprop"], maps["gradcam"])
        return {m: maps[m] for m in methods}

    def _usable_methods(self, x, target, kw) -> tuple[list[str], dict[str, str]]:
        """Requested methods minus those this model cannot support (reason logged)."""
        methods = [str(m) for m in self.cfg.task.methods]
        skipped = {}
        if "cam" in methods:
            try:
                cam(self.model, x[:2], target[:2], {k: v[:2] for k, v in kw.items()})
            except NotCAMCompatible as e:
                skipped["cam"] = str(e)
        if {"guided_backprop", "guided_gradcam"} & set(methods):
            try:
                guided_backprop(self.model, x[:2], target[:2], {k: v[:2] for k, v in kw.items()})
            except NoReLUModules as e:
                skipped["guided_backprop"] = skipped["guided_gradcam"] = str(e)
        for m, why in skipped.items():
            log.warning("skipping %s: %s", m, why)
        return [m for m in methods if m not in skipped], skipped

    def test(self) -> dict:
        t = self.cfg.task
        self.model.load_state_dict(load_checkpoint(self.ckpt_path, self.device)["model"])
        self.model.eval()
        split = str(t.split)
        idx = self._pick(split)
        batch = self._batch(split, idx)
        x, y = batch["x"].float(), batch["y"].long()
        kw = {k: batch[k] for k in self._extra_inputs if k in batch}
        with torch.no_grad():
            probs = self._forward(batch, x).float().softmax(-1)
        pred = probs.argmax(-1)
        target = self._targets(y, pred)
        methods, skipped = self._usable_methods(x, target, kw)
        layer = None
        if {"gradcam", "guided_gradcam"} & set(methods):
            layer = t.layer or default_layer(self.model, x[:2], {k: v[:2] for k, v in kw.items()})
        log.info("explaining %d %s samples with %s; Grad-CAM layer '%s'", len(idx), split,
                 ", ".join(methods), layer)

        d = t.deletion
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        step = int(self.cfg.trainer.eval_batch_size)
        maps = {m: [] for m in methods}
        curves = {m: [] for m in [*methods, "random"]}
        for s in range(0, len(idx), step):
            sl = slice(s, s + step)
            xs, ts, kws = x[sl], target[sl], {k: v[sl] for k, v in kw.items()}
            chunk = self._explain(xs, ts, kws, methods, layer)
            seg = int(d.segment_len)
            orders = {m: deletion_order(per_step(v), gen, seg) for m, v in chunk.items()}
            for m, order in orders.items():
                maps[m].append(chunk[m].cpu())
                fr, sc = deletion_curve(self.model, xs, ts, order, int(d.steps), str(d.baseline),
                                        str(d.score), kws)
                curves[m].append(sc)
            rnd = [deletion_curve(self.model, xs, ts, random_order(len(xs), xs.shape[1], gen, seg),
                                  int(d.steps), str(d.baseline), str(d.score), kws)[1]
                   for _ in range(int(d.random_repeats))]
            curves["random"].append(np.mean(rnd, axis=0))
        maps = {m: torch.cat(v).numpy() for m, v in maps.items()}
        curves = {m: np.concatenate(v) for m, v in curves.items()}
        aucs = {m: curve_auc(fr, c) for m, c in curves.items()}

        names = [str(n) for n in self.meta.get("class_names") or range(int(self.meta["num_classes"]))]
        y_np, pred_np = y.cpu().numpy(), pred.cpu().numpy()
        profiles = {m: class_profiles(per_step(torch.as_tensor(v)).numpy(), y_np, len(names))
                    for m, v in maps.items()}
        results = {split: {
            "explained": int(len(idx)),
            "accuracy_explained": float((pred_np == y_np).mean()),
            "gradcam_layer": str(layer),
            "deletion_auc": {m: _per_class(a, y_np, names) for m, a in aucs.items()},
            "skipped": skipped,
        }}
        self._save_npz(idx, x, kw, y_np, pred_np, target, probs, maps, profiles, fr, curves, aucs, names)
        if t.figures:
            self._figures(idx, x, y_np, pred_np, target, probs, maps, profiles, names, split)
        return self.finish(results)

    # ------------------------------------------------------------------ outputs
    def _save_npz(self, idx, x, kw, y, pred, target, probs, maps, profiles, fr, curves, aucs, names):
        arrays = {"index": idx, "x": x.cpu().numpy(), "y": y, "pred": pred,
                  **{f"input_{k}": v.cpu().numpy() for k, v in kw.items()},
                  "target": target.cpu().numpy(), "probs": probs.cpu().numpy(),
                  "class_names": np.array(names), "deletion_fractions": fr}
        for m in maps:
            arrays[f"map_{m}"] = maps[m]
            arrays[f"profile_{m}"] = profiles[m]
        for m in curves:
            arrays[f"deletion_curve_{m}"] = curves[m]
            arrays[f"deletion_auc_{m}"] = aucs[m]
        np.savez_compressed(self.run_dir / "explanations.npz", **arrays)

    def _figures(self, idx, x, y, pred, target, probs, maps, profiles, names, split):
        from utils.explain.plots import figure_to_png, plot_class_profiles, plot_explanation

        out = self.run_dir / "explain"
        out.mkdir(parents=True, exist_ok=True)
        xs, tg, pr = x.cpu().numpy(), target.cpu().numpy(), probs.cpu().numpy()
        rank, limit = {}, int(self.cfg.task.figures_per_class)
        for i in range(len(idx)):
            k = rank[y[i]] = rank.get(y[i], -1) + 1
            if k >= limit:
                continue
            title = (f"{split} #{idx[i]}: true {names[y[i]]}, pred {names[pred[i]]} "
                     f"(p={pr[i, pred[i]]:.2f}); map of {names[tg[i]]} (p={pr[i, tg[i]]:.2f})")
            per = {TITLES[m]: per_step(torch.as_tensor(v[i:i + 1]))[0].numpy()
                   for m, v in maps.items()}
            fig = plot_explanation(xs[i], per, title)
            figure_to_png(fig, out / f"{_safe(names[y[i]])}_{k}_idx{idx[i]}.png", close=False)
            self.tb.figure(f"explain/{_safe(names[y[i]])}/{k}", fig)
        counts = [int((y == c).sum()) for c in range(len(names))]
        mean_traces = np.stack([xs[y == c].mean(0) if counts[c] else np.zeros_like(xs[0])
                                for c in range(len(names))])
        fig = plot_class_profiles({TITLES[m]: p for m, p in profiles.items()}, mean_traces,
                                  names, counts)
        figure_to_png(fig, out / "class_profiles.png", close=False)
        self.tb.figure("explain/class_profiles", fig)


def _per_class(values: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    out = {"all": float(values.mean())}
    for c, name in enumerate(names):
        if (labels == c).any():
            out[name] = float(values[labels == c].mean())
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "class"
