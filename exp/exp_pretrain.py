"""Self-supervised pretraining (task=pretrain) and its downstream evaluation.

Contract for representation models (TS2Vec, TimesURL, SimCLR, MoCo, CPC, ... built by
``instantiate(cfg.model, in_channels=..., seq_len=..., ...)``):

- ``model(batch)`` in train mode returns an outputs dict (e.g. the two views'
  representations). Augmentation and cropping happen inside ``forward`` and draw from
  torch's RNG, so ``seed=`` reproduces a run. In eval mode it must still return a dict the
  loss accepts (the validation loss, if a "val" split is pretrained against).
- the loss (``instantiate(cfg.loss)``) is called as ``loss(outputs, batch)`` and returns a
  Tensor or {"loss": Tensor, <part>: Tensor, ...} (parts are logged as train/loss/<part>).
- ``model.encode(x, mask=None, pooling="max"|"last"|None) -> Tensor`` [N, D] or [N, T, D]
  on the CPU: no grad, eval mode, in batches; x [N, T, C] (NaN = unobserved). Models
  with weight averaging or a momentum encoder encode with the averaged/target weights.
  For the forecasting protocol also ``causal=True, sliding_length=, sliding_padding=``.
- ``model.repr_dim`` (D) and ``model.embed(x, pooling) -> [B, D]`` (differentiable, no
  augmentation) for the ``finetune`` protocol.
- optional ``model.on_train_step_end(step)`` after every optimizer step (weight
  averaging, EMA/momentum updates); Exp_Basic calls it.

Training is the shared loop of Exp_Basic. The pretraining set is the union of the splits
in ``task.pretrain_splits`` (labels are never read; unobserved entries become NaN; series
longer than 2 x ``model.max_train_length`` are cut into sections as TS2Vec does). Its batches
carry "x", "index" (the row in the pretraining set: memory banks) and "patient_id" /
"trial_id" when every pretraining split has them (a cut series keeps its ids in every
section). A model with ``batch_groups(arrays)`` (COMET) gets training batches of whole groups
(runs of equal ids shuffled as units). A model with ``uses_labels = True`` (the
semi-supervised hybrid) pretrains on downstream_train instead, with "y" kept for the
stratified ``task.label_fraction`` share the protocol also gets and -1 for the rest.
``trainer.max_steps: auto`` is TS2Vec's rule: 200 iterations when the pretraining array
holds <= 100,000 values, else 600 (a model may count differently: TimesURL adds the
time-stamp channel, as its official loader does). The batch size is capped at the number
of series.

``test()`` loads the ``task.encoder`` (last | best) weights and runs ``task.protocol``
(svm | logistic | knn | linear | finetune | tfc_finetune, utils/protocols) with ``task.label_fraction``
of the labelled ``downstream_train`` split (stratified, seeded); ``svm/logistic/knn`` fit
on downstream_train + downstream_val (the official TRAIN split, as TS2Vec; set
``task.fit_on_val=false`` to keep val out), ``linear/finetune`` select their epoch on
downstream_val. With ``task.append_features`` the dataset's per-sample "features" (e.g.
the RR intervals of a beat), z-scored on the training rows, are appended to the frozen
representations of the feature protocols. Forecasting data (data=ett|custom) follows
TS2Vec instead: the scaled series with its time features as covariate channels is
pretrained on its training rows, and test() fits ridge regressions from causal sliding
representations (padding ``task.forecast_padding``) to the next ``task.pred_lens`` steps
(alpha chosen on the validation rows), reporting MSE/MAE on the scaled test rows; models
without that causal sliding mode are refused at start. Metrics of ``downstream_test`` go to
metrics.json under "test" and the test representations with their labels to TensorBoard's
embedding projector. ``task.evaluations`` (e.g. ``[linear:1.0, knn:0.01]``) runs more
protocol:fraction pairs after the main one on the same frozen encoder, each split encoded
once; their metrics go to metrics.json under "evaluations" ("linear@1", "knn@0.01").
Data without a test split (TF-C's Epilepsy) is reported on
downstream_val instead, under "val" with ``"test_split": "val"``; the protocol then gets no
validation split (nothing selects on the reported set).
``task.pretrained=<run dir>/checkpoints/last.pt`` skips pretraining and evaluates the
encoder an earlier task=pretrain run saved (same model and data overrides), e.g. with other
protocols or without the appended features, at the cost of the evaluation alone.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from data_provider.base import ArrayDataset, DataBundle
from data_provider.loader import epoch_generator
from exp.exp_basic import Exp_Basic
from models.ts2vec import split_long_series
from utils.checkpoint import checkpoint_file, load_checkpoint
from utils.metrics import classification_metrics
from utils.protocols import FEATURE_PROTOCOLS, MODEL_NEEDS, get_protocol, stratified_subset
from utils.protocols.base import subsample_rows

log = logging.getLogger(__name__)

# protocols that choose their hyper-parameters without a validation split
CV_PROTOCOLS = ("svm", "logistic", "knn")


def arrays_of(ds) -> dict:
    """Every sample of a dataset as one dict of arrays."""
    return ds.arrays if isinstance(ds, ArrayDataset) else ds.__getitems__(list(range(len(ds))))


def series_with_nan(ds) -> np.ndarray:
    """x [N, T, C] of a dataset with entries its ``mask`` marks unobserved set to NaN."""
    arrays = arrays_of(ds)
    x = torch.as_tensor(arrays["x"]).float().cpu().numpy().copy()
    if "mask" in arrays:
        m = torch.as_tensor(arrays["mask"]).cpu().numpy().astype(bool)
        if m.ndim == 2:
            m = np.repeat(m[..., None], x.shape[-1], axis=-1)
        x[~m] = np.nan
    return x


def labels_of(ds) -> np.ndarray:
    arrays = arrays_of(ds)
    if "y" not in arrays:
        raise ValueError("the downstream split has no labels 'y'; the classification protocols "
                         "need a labelled dataset")
    return torch.as_tensor(arrays["y"]).cpu().numpy().astype(np.int64).reshape(-1)


# per-sample keys the pretraining set keeps when every pretraining split has them (COMET's
# patient and trial levels); "index" (the row in the pretraining set) is always added
ID_KEYS = ("patient_id", "trial_id")


def shared_keys(arrays: list[dict], keys) -> dict[str, np.ndarray]:
    """{key: the splits' values concatenated} for each of ``keys`` that every split has."""
    return {k: np.concatenate([torch.as_tensor(a[k]).cpu().numpy() for a in arrays])
            for k in keys if all(k in a for a in arrays)}


def pretraining_set(x: np.ndarray, keys: dict[str, np.ndarray], max_len: int | None,
                    drop_empty: bool = True) -> ArrayDataset:
    """ArrayDataset of x [N, T, C] (NaN = unobserved) and its per-sample ``keys``. Series cut
    into sections by ``split_long_series`` (TS2Vec) keep their keys in every section;
    all-NaN series are dropped; "index" is the row in the result (memory banks)."""
    n = len(x)
    sections = x.shape[1] // max_len if max_len else 1
    if sections >= 2:                    # split_long_series stacks section-major
        keep = np.concatenate([~np.isnan(p).all(axis=(1, 2))
                               for p in np.array_split(x, sections, axis=1)])
        x = split_long_series(x, max_len)
        keys = {k: np.tile(v, sections)[keep] for k, v in keys.items()}
    if drop_empty:
        keep = ~np.isnan(x).all(axis=(1, 2))
        x, keys = x[keep], {k: v[keep] for k, v in keys.items()}
    if len(x) != n:
        log.info("pretraining set: %d series -> %d (sections of long series, empty ones dropped)",
                 n, len(x))
    return ArrayDataset(x=x.astype(np.float32), **keys, index=np.arange(len(x), dtype=np.int64))


FORECAST_FAMILIES = ("ett", "custom")
TASK_CHOICES = {"encoder": ("last", "best"), "pooling": ("max", "last")}


def check_pretrain_task(task) -> None:
    """Wrong task.* values name themselves and the valid choices."""
    get_protocol(str(task.get("protocol", "svm")))
    parse_evaluations(task.get("evaluations"))
    for key, allowed in TASK_CHOICES.items():
        if str(task.get(key, allowed[0])) not in allowed:
            raise ValueError(f"task.{key}={task.get(key)} is not valid; choose one of: {', '.join(allowed)}")
    frac = float(task.get("label_fraction", 1.0))
    if not 0 < frac <= 1:
        raise ValueError(f"task.label_fraction={frac} must lie in (0, 1], e.g. 1.0, 0.1 or 0.01")


class _ForecastInput:
    """Encodes the full input series whatever array the protocol passes (the protocol
    reads targets from its own array; the encoder sees covariates + every channel)."""

    def __init__(self, model, data):
        self.model, self.data = model, data

    def encode(self, _x, **kw):
        return self.model.encode(self.data, **kw)


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


class _SplitFeatures:
    """Frozen representations of the rows [(split, indices), ...]. With ``whole`` every
    split is encoded once, in full, and shared by all evaluations; otherwise only the
    requested rows are encoded (one evaluation, e.g. 1 % of the labels)."""

    def __init__(self, encode, splits: dict, whole: bool):
        self.encode, self.x, self.whole, self.cache = encode, \
            {s: v[0] for s, v in splits.items()}, whole, {}

    def get(self, rows: list) -> np.ndarray:
        if not self.whole:
            return self.encode(_gather(self.x, rows))
        for split, _ in rows:
            if split not in self.cache:
                self.cache[split] = self.encode(self.x[split])
        return _gather(self.cache, rows)


class GroupBatches:
    """Training batches of whole groups: runs of equal ``groups`` ids (consecutive samples,
    e.g. the windows of one trial) are shuffled as units, then cut into batches. The order
    of epoch e depends only on (seed, e), as the shared loader's, so resume stays exact."""

    def __init__(self, dataset: ArrayDataset, groups: torch.Tensor, batch_size: int,
                 generator: torch.Generator, drop_last: bool):
        _, counts = torch.unique_consecutive(groups, return_counts=True)
        runs = torch.split(torch.arange(len(groups)), counts.tolist())
        order = torch.randperm(len(runs), generator=generator)
        self.order = torch.cat([runs[i] for i in order.tolist()])
        self.arrays, self.batch_size = dataset.arrays, batch_size
        n = len(self.order)
        self.n_batches = n // batch_size if drop_last and n > batch_size else -(-n // batch_size)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self):
        device = next(iter(self.arrays.values())).device
        for b in range(self.n_batches):
            idx = self.order[b * self.batch_size:(b + 1) * self.batch_size].to(device)
            yield {k: v[idx] for k, v in self.arrays.items()}


class Exp_Pretrain(Exp_Basic):
    def __init__(self, cfg, run_dir):
        check_pretrain_task(cfg.task)          # fail before any work, not after pretraining
        # an earlier run's encoder to evaluate instead of pretraining (None: pretrain)
        self.pretrained = (checkpoint_file(cfg.task.pretrained, "task.pretrained", "a task=pretrain run")
                           if cfg.task.get("pretrained") else None)
        super().__init__(cfg, run_dir)
        if not callable(getattr(self.model, "encode", None)):
            raise TypeError(f"model={cfg.model.name} ({type(self.model).__name__}) has no "
                            "encode(x, mask=None, pooling=...); task=pretrain evaluates "
                            "representation models (contract in exp/exp_pretrain.py)")
        if getattr(self, "_forecast", None) is not None and \
                "sliding_padding" not in inspect.signature(self.model.encode).parameters:
            raise TypeError(f"data={cfg.data.name} is evaluated with TS2Vec's forecasting protocol, "
                            "which needs encode(..., causal=True, sliding_length=1, sliding_padding=) "
                            f"(per-step causal representations); model={cfg.model.name} has no "
                            "such mode: use model=ts2vec or timesurl, or a classification dataset")
        for protocol in [str(cfg.task.get("protocol", "svm"))] + \
                [name for name, _ in parse_evaluations(cfg.task.get("evaluations"))]:
            lacking = [a for a in MODEL_NEEDS.get(protocol, ()) if not hasattr(self.model, a)]
            if lacking:                        # fail now, not after pretraining
                raise TypeError(f"protocol {protocol} (task.protocol / task.evaluations) needs "
                                f"model.{', model.'.join(lacking)}, which model={cfg.model.name} "
                                "does not have; choose another protocol")
        frac = float(cfg.task.get("label_fraction", 1.0))
        if getattr(self.model, "uses_labels", False) and any(
                f != frac for _, f in parse_evaluations(cfg.task.get("evaluations"))):
            log.warning("model=%s pretrains with the labels of task.label_fraction=%g: the "
                        "task.evaluations at other fractions evaluate an encoder that saw a "
                        "different number of labels than they are given", cfg.model.name, frac)
        self._groups = self._batch_groups()

    # ------------------------------------------------------------------ training
    def train(self) -> dict:
        if self.pretrained is not None:
            self._load_pretrained(self.pretrained)
            return dict(self.state)
        return super().train()

    def _load_pretrained(self, path: Path) -> None:
        """The weights of an earlier pretraining run instead of pretraining again."""
        ckpt = load_checkpoint(path, map_location=self.device)
        saved = OmegaConf.create(ckpt.get("config") or "{}")
        name = OmegaConf.select(saved, "model.name")
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
                           if k in ("epoch", "step", "train_seconds")})
        log.info("task.pretrained: evaluating the encoder of %s (%d pretraining steps); "
                 "no pretraining in this run", path, self.state["step"])

    # ------------------------------------------------------------------ data
    def _get_data(self) -> DataBundle:
        bundle = super()._get_data()
        if str(self.cfg.data.family) in FORECAST_FAMILIES:
            return self._forecast_data(bundle)
        if getattr(get_class(str(self.cfg.model._target_)), "uses_labels", False):
            return self._semi_supervised_data(bundle)
        splits = bundle.splits
        wanted = list(self.cfg.task.get("pretrain_splits", ["train"]))
        missing = [s for s in wanted if s not in splits]
        if "train" in missing:
            raise ValueError(f"data={self.cfg.data.name} has no 'train' split to pretrain on")
        names = [s for s in wanted if s in splits]
        parts = [series_with_nan(splits[s]) for s in names]
        if len({p.shape[1:] for p in parts}) > 1:
            log.warning("pretrain splits %s differ in shape %s; pretraining on 'train' only",
                        wanted, [p.shape[1:] for p in parts])
            parts, names = parts[:1], names[:1]
        ids = shared_keys([arrays_of(splits[s]) for s in names], ID_KEYS)
        train = pretraining_set(np.concatenate(parts), ids, self.cfg.model.get("max_train_length"))
        new = {"train": train}
        if "val" in splits and "val" not in wanted:              # a held-out loss curve
            val_ids = shared_keys([arrays_of(splits["val"])], ID_KEYS)
            new["val"] = pretraining_set(series_with_nan(splits["val"]), val_ids, None,
                                         drop_empty=False)
        for name, ds in splits.items():
            if name.startswith("downstream_"):
                new[name] = ds
        x = train.arrays["x"]
        log.info("pretraining on %d series (%s) of %d steps x %d channels; batch keys %s",
                 len(x), "+".join(names), x.shape[1], x.shape[2], sorted(train.arrays))
        return DataBundle(splits={**{k: v for k, v in splits.items()
                                     if k not in new and k not in ("train", "val")}, **new},
                          meta={**bundle.meta, "n_pretrain": len(x),
                                "pretrain_values": int(x.numel())})

    def _semi_supervised_data(self, bundle: DataBundle) -> DataBundle:
        """Models with ``uses_labels`` (the semi-supervised hybrid) pretrain on the labelled
        downstream_train split, where only the stratified, seeded ``task.label_fraction``
        share keeps its label (the same samples the downstream protocol is given) and the
        rest get -1; downstream_val, hidden the same way, gives the held-out loss."""
        from models.ssl.hybrid import semi_supervised_labels
        splits, task = bundle.splits, self.cfg.task
        frac, seed = float(task.get("label_fraction", 1.0)), int(self.cfg.seed)
        new = {}
        for src, dst, max_len in (("train", "train", self.cfg.model.get("max_train_length")),
                                  ("val", "val", None)):
            ds = splits.get(f"downstream_{src}")
            if ds is None or len(ds) == 0:
                if dst == "train":
                    raise ValueError(f"model={self.cfg.model.name} is semi-supervised and pretrains "
                                     f"on labelled data, but data={self.cfg.data.name} has no "
                                     "labelled downstream_train split")
                continue
            ids = shared_keys([arrays_of(ds)], ID_KEYS)
            ids["y"] = semi_supervised_labels(labels_of(ds), frac, seed)
            new[dst] = pretraining_set(series_with_nan(ds), ids, max_len, drop_empty=dst == "train")
        x, y = new["train"].arrays["x"], new["train"].arrays["y"]
        log.info("semi-supervised pretraining on downstream_train: %d series, %d labelled "
                 "(label_fraction %.3g), the rest -1", len(x), int((y >= 0).sum()), frac)
        keep = {k: v for k, v in splits.items() if k not in ("train", "val")}
        return DataBundle(splits={**keep, **new},
                          meta={**bundle.meta, "n_pretrain": len(x),
                                "pretrain_values": int(x.numel())})

    def _forecast_data(self, bundle: DataBundle) -> DataBundle:
        """TS2Vec's forecasting setting: one scaled series [1, T, covariates + channels] with
        the time features as covariate channels in front; pretraining on the training rows."""
        sp, meta = bundle.splits, bundle.meta
        lag = int(meta["seq_len"])            # val/test windows start seq_len rows early
        rows = np.concatenate([sp["train"].x, sp["val"].x[lag:], sp["test"].x[lag:]])
        marks = np.concatenate([sp["train"].mark, sp["val"].mark[lag:], sp["test"].mark[lag:]])
        series = np.concatenate([marks, rows], axis=1)[None].astype(np.float32)
        n_tr, n_va = len(sp["train"].x), len(sp["val"].x) - lag
        cov = int(marks.shape[1])
        train = split_long_series(series[:, :n_tr], self.cfg.model.get("max_train_length"))
        self._forecast = {"data": series, "train": slice(0, n_tr),
                          "val": slice(n_tr, n_tr + n_va), "test": slice(n_tr + n_va, None),
                          "covariates": cov, "targets": [cov + i for i in meta["out_index"]]}
        log.info("forecast pretraining on %d x %d steps x %d channels (%d time covariates)",
                 *train.shape, cov)
        return DataBundle(splits={"train": ArrayDataset(x=train)},
                          meta={**meta, "in_channels": int(series.shape[-1]),
                                "n_pretrain": len(train), "pretrain_values": int(train.size)})

    def _select_optimizer(self):
        # a schedule over the whole run (scheduler.total_steps) needs max_steps=auto resolved;
        # Exp_Basic.__init__ calls this once model and data exist
        self._resolve_schedule()
        return super()._select_optimizer()

    def _resolve_schedule(self) -> None:
        """trainer.max_steps=auto -> TS2Vec's 200/600 rule; batch <= number of series."""
        t = self.cfg.trainer
        n = len(self.data.splits["train"])
        if str(t.max_steps) == "auto":
            values = int(self.meta["pretrain_values"])
            counted = getattr(self.model, "auto_steps_values", None)   # e.g. TimesURL's time stamps
            if callable(counted):
                values = int(counted(values))
            t.max_steps = 200 if values <= 100_000 else 600
            log.info("trainer.max_steps=auto -> %d iterations (%d values)", t.max_steps, values)
        if int(t.batch_size) > n:
            log.info("batch size %d > %d pretraining series: using %d", t.batch_size, n, n)
            t.batch_size = n

    def _batch_groups(self):
        """Group id per pretraining sample when the model asks for whole groups in a batch
        (COMET's trial shuffling: ``model.batch_groups(arrays)``), else None."""
        fn = getattr(self.model, "batch_groups", None)
        if not callable(fn) or getattr(self, "_forecast", None) is not None:
            return None
        groups = fn(self.data.splits["train"].arrays)
        if groups is None:
            return None
        groups = torch.as_tensor(groups).cpu()
        log.info("training batches hold whole groups of consecutive samples (%d groups of %d series)",
                 len(torch.unique_consecutive(groups)), len(groups))
        return groups

    def _loader(self, split: str, train: bool, epoch: int = 0):
        if not (train and split == "train" and self._groups is not None):
            return super()._loader(split, train, epoch)
        t = self.cfg.trainer
        return GroupBatches(self._dataset(split), self._groups, int(t.batch_size),
                            epoch_generator(int(self.cfg.seed), epoch), bool(t.drop_last))

    # ------------------------------------------------------------------ loop hooks
    def _process_one_batch(self, batch: dict, train: bool):
        outputs = self.model(batch)
        loss = self.criterion(outputs, batch)
        # per-batch outputs (crops of random length) are not gathered over a split
        return loss, {}

    # ------------------------------------------------------------------ downstream
    def _downstream(self, split: str):
        """(x with NaN for unobserved, y, extra per-sample features or None) of a split."""
        for name in (f"downstream_{split}", split):
            ds = self.data.splits.get(name)
            if ds is not None and len(ds) > 0:
                feats = ds.arrays.get("features") if isinstance(ds, ArrayDataset) else None
                feats = None if feats is None else feats.float().cpu().numpy()
                return series_with_nan(ds), labels_of(ds), feats
        return None, None, None

    def _encode(self, x: np.ndarray) -> np.ndarray:
        pooling = self.cfg.task.get("pooling", "max")
        bs = int(self.cfg.trainer.eval_batch_size)
        return np.asarray(self.model.encode(x, pooling=pooling, batch_size=bs))

    def test(self) -> dict:
        task = self.cfg.task
        which = str(task.get("encoder", "last"))
        if self.pretrained is not None:
            which = f"pretrained:{self.pretrained}"
        else:
            self.load_weights(which)
        self.model.eval()
        if getattr(self, "_forecast", None) is not None:
            return self._test_forecast(which)
        splits, report = self._downstream_splits()
        evaluations = parse_evaluations(task.get("evaluations"))
        # several evaluations encode every split once and share the features
        features = _SplitFeatures(self._encode, splits, whole=bool(evaluations))
        primary = (str(task.protocol), float(task.get("label_fraction", 1.0)))
        metrics, f_te = self._evaluate(*primary, splits, features, which, report)
        self._log_embedding(f_te[:, :self.model.repr_dim] if hasattr(self.model, "repr_dim")
                            else f_te, splits["test"][1])
        results = {report: metrics, "test_split": report}
        if evaluations:
            results["evaluations"] = {}
            for name, frac in evaluations:
                key = evaluation_key(name, frac)
                results["evaluations"][key], _ = self._evaluate(name, frac, splits, features,
                                                                which, report)
                log.info("evaluation %s: %s", key, self._summary(results["evaluations"][key]))
        self.finish(results)
        if report != "test":
            log.info("%s (no test split): %s", report, self._summary(metrics))
        return results

    def _downstream_splits(self) -> tuple[dict, str]:
        """{"train"|"val"|"test": (x, y, extra features)} (val may be missing) and the name
        the test metrics are reported under ("val" when the data has no test split)."""
        splits = {s: self._downstream(s) for s in ("train", "val", "test")}
        report = "test"
        if splits["test"][0] is None and splits["val"][0] is not None:
            # e.g. TF-C's Epilepsy ships train/val only: the validation split is the test set,
            # so nothing may select on it (no early stopping, no fit on val)
            log.warning("data=%s has no downstream_test/test split: reporting on downstream_val "
                        "(metrics.json 'val', test_split: val); the protocol gets no "
                        "validation split", self.cfg.data.name)
            splits["test"], splits["val"] = splits["val"], (None, None, None)
            report = "val"
        if splits["train"][0] is None or splits["test"][0] is None:
            raise ValueError(f"data={self.cfg.data.name} provides no labelled downstream_train and "
                             "downstream_test (or downstream_val) splits for the downstream protocol")
        return {s: v for s, v in splits.items() if v[0] is not None}, report

    def _evaluate(self, name: str, frac: float, splits: dict, features: "_SplitFeatures",
                  which: str, report: str) -> tuple[dict, np.ndarray]:
        """One protocol at one label fraction: (metrics, test features or scores' inputs)."""
        task, seed = self.cfg.task, int(self.cfg.seed)
        fit = get_protocol(name)
        y_all = {s: v[1] for s, v in splits.items()}
        # rows used per split: the stratified label fraction of train (and of val)
        train_rows = [("train", stratified_subset(y_all["train"], frac, seed))]
        val_rows = []
        if "val" in splits:
            val_rows = [("val", stratified_subset(y_all["val"], frac, seed) if frac < 1
                         else np.arange(len(y_all["val"])))]
        merge_val = name in CV_PROTOCOLS and bool(task.get("fit_on_val", True)) and bool(val_rows)
        if merge_val:
            train_rows, val_rows = train_rows + val_rows, []
        args = OmegaConf.to_container(task.get("protocol_args", {}).get(name, {}) or {}, resolve=True)
        cap = args.get("max_samples")
        y_tr = _gather(y_all, train_rows)
        if name in FEATURE_PROTOCOLS and cap and len(y_tr) > int(cap):
            # the protocol would subsample this many (stratified, seeded) anyway: encode only those
            train_rows = _restrict(train_rows, np.sort(subsample_rows(y_tr, int(cap), seed)))
            y_tr = _gather(y_all, train_rows)
        y_va = _gather(y_all, val_rows) if val_rows else None
        y_te = y_all["test"]
        test_rows = [("test", np.arange(len(y_te)))]
        k = int(self.meta.get("num_classes") or (max(y_tr.max(), y_te.max()) + 1))
        extra = bool(task.get("append_features", True)) and all(
            splits[s][2] is not None for s in splits)
        log.info("downstream %s on %d labelled series (label_fraction %.3g%s%s), test %d",
                 name, len(y_tr), frac, ", train+val" if merge_val else "",
                 ", + extra features" if extra and name in FEATURE_PROTOCOLS else "", len(y_te))
        f_te = features.get(test_rows)
        if name in FEATURE_PROTOCOLS:
            f_tr = features.get(train_rows)
            f_va = features.get(val_rows) if val_rows else None
            if extra:
                e = {s: v[2] for s, v in splits.items()}
                e_tr = _gather(e, train_rows)
                mu, sd = e_tr.mean(0), e_tr.std(0) + 1e-6
                f_tr = np.hstack([f_tr, (e_tr - mu) / sd])
                f_te = np.hstack([f_te, (e["test"] - mu) / sd])
                if f_va is not None:
                    f_va = np.hstack([f_va, (_gather(e, val_rows) - mu) / sd])
            clf = fit(f_tr, y_tr, num_classes=k, val_features=f_va, val_y=y_va, seed=seed, **args)
            scores = clf.scores(f_te)
        else:
            x = {s: v[0] for s, v in splits.items()}
            clf = fit(self.model, _gather(x, train_rows), y_tr, num_classes=k,
                      val_x=_gather(x, val_rows) if val_rows else None, val_y=y_va, seed=seed,
                      device=self.device, **args)
            scores = clf.scores(x["test"])
        # SVM scores are decision values (margins), the others probabilities
        metrics = classification_metrics(y_te, scores, self.meta.get("class_names"),
                                         scores_are_probs=bool(getattr(clf, "scores_are_probs", True)))
        metrics.update(protocol=name, label_fraction=frac, n_labelled=int(len(y_tr)),
                       encoder=which, extra_features=extra and name in FEATURE_PROTOCOLS,
                       test_split=report)
        return metrics, f_te

    def _test_forecast(self, which: str) -> dict:
        """TS2Vec's protocol: ridge on causal sliding representations, per horizon."""
        from utils.protocols.ridge_forecast import evaluate_forecasting
        f, task = self._forecast, self.cfg.task
        horizons = list(task.get("pred_lens") or [int(self.cfg.data.pred_len)])
        data = f["data"]
        # forecast the target channels only: the covariates stay inputs
        target = np.concatenate([data[..., :f["covariates"]], data[..., f["targets"]]], axis=-1)
        model = _ForecastInput(self.model, data)
        res = evaluate_forecasting(model, target, f["train"], f["val"], f["test"], horizons,
                                   n_covariate_cols=f["covariates"],
                                   padding=int(task.get("forecast_padding", 200)),
                                   batch_size=int(self.cfg.trainer.eval_batch_size),
                                   seed=int(self.cfg.seed))
        test = {str(h): v for h, v in res.items()}
        test.update(mse=float(np.mean([v["mse"] for v in res.values()])),
                    mae=float(np.mean([v["mae"] for v in res.values()])),
                    protocol="ridge", encoder=which)
        results = {"test": test}
        self.finish(results)
        return results

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
