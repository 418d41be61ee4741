"""Exp_Basic: the one training loop every task shares (Informer's Exp_Basic layout).

A task subclass changes only what differs:
    _build_model()                         -> nn.Module (default: instantiate cfg.model with data sizes)
    _select_criterion()                    -> loss(outputs, batch) (default: instantiate cfg.loss)
    _process_one_batch(batch, train)       -> (loss Tensor or None, outputs dict of tensors)
    _metrics(collected, split)             -> {name: float} from the outputs gathered over a split
    _log_evaluation(collected, split, metrics) optional figures for TensorBoard
    test()                                 -> final metrics (default: best checkpoint on val/test)

The loop (train / vali / test) handles devices, mixed precision, gradient clipping,
early stopping on a *validation* metric, atomic best/last checkpoints with every RNG
state, exact resume, TensorBoard scalars and the hparams table.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from data_provider.base import ArrayDataset, DataBundle
from data_provider.data_factory import data_provider
from data_provider.loader import dataset_nbytes, make_loader
from utils.checkpoint import load_checkpoint, save_atomic, write_text_atomic
from utils.instantiate import build, target_parameters
from utils.metrics import flatten_metrics, unflatten_metrics
from utils.runtime import apply_runtime_settings
from utils.seed import get_rng_state, set_rng_state
from utils.tb import TensorBoardLogger

log = logging.getLogger(__name__)

# Data kept on the GPU when trainer.data_on_device=auto and the arrays are this small.
ON_DEVICE_MAX_BYTES = 2 * 1024**3
# Loss parts a loss may return next to "loss" are logged, everything else is ignored.


class Exp_Basic:
    def __init__(self, cfg: DictConfig, run_dir: str | Path):
        self.cfg = cfg
        apply_runtime_settings(cfg)   # threads, subnormal flush: every entry point builds an Exp
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = self._acquire_device()
        self.amp_dtype = self._amp_dtype()
        self.data: DataBundle = self._get_data()
        self.meta = self.data.meta
        self._device_datasets: dict[str, ArrayDataset] = {}
        self.model = self._build_model().to(self.device)
        self.criterion = self._select_criterion()
        if isinstance(self.criterion, nn.Module):
            self.criterion = self.criterion.to(self.device)
        self.optimizer, self.scheduler = self._select_optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.tb = TensorBoardLogger(self.run_dir)
        self.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "bad_epochs": 0}
        self._pending_best: dict | None = None   # a best epoch not yet written (checkpoint_every > 1)

    # ------------------------------------------------------------------ setup
    def _acquire_device(self) -> torch.device:
        want = str(self.cfg.trainer.device)
        if want == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if want == "cpu":
            return torch.device("cpu")
        if want.startswith("cuda"):
            if not torch.cuda.is_available():
                raise RuntimeError(f"trainer.device={want} but CUDA is not available on this "
                                   "machine; use trainer.device=cpu or trainer.device=auto")
            dev = torch.device(want)
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise RuntimeError(f"trainer.device={want} but only {torch.cuda.device_count()} "
                                   "CUDA device(s) exist; use cuda:0 … cuda:"
                                   f"{torch.cuda.device_count() - 1}")
            return dev
        raise ValueError(f"trainer.device={want} is not valid; use auto, cpu, cuda or cuda:N")

    def _amp_dtype(self):
        precision = str(self.cfg.trainer.precision)
        table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision not in table:
            raise ValueError(f"trainer.precision={precision} is not valid; use fp32, bf16 or fp16")
        if table[precision] is not None and self.device.type != "cuda":
            log.warning("trainer.precision=%s is mixed precision for CUDA; running fp32 on %s",
                        precision, self.device)
            return None
        return table[precision]

    def _get_data(self) -> DataBundle:
        return data_provider(self.cfg)

    def _model_dims(self) -> dict:
        """Data-dependent sizes a model constructor may take."""
        return {k: v for k, v in self.meta.items() if isinstance(v, (int, float, str, list, tuple, dict))}

    def _build_model(self) -> nn.Module:
        return build(self.cfg.model, **self._model_dims())

    def _select_criterion(self):
        return build(self.cfg.loss, **self._model_dims())

    def _select_optimizer(self):
        opt_factory = build(self.cfg.optimizer)
        optimizer = opt_factory(self._parameter_groups())
        for group in optimizer.param_groups:
            if group.get("fix_lr"):
                group["fixed_lr"] = group["lr"]
        scheduler = None
        sched_cfg = self.cfg.get("scheduler")
        if sched_cfg and sched_cfg.get("_target_"):
            # ReduceLROnPlateau follows the monitored validation metric in its direction
            mode = monitor_mode(str(self.cfg.task.get("monitor", "loss")),
                                str(self.cfg.task.get("monitor_mode", "auto")))
            extra = {}
            params = target_parameters(get_class(str(sched_cfg._target_))) or set()
            if {"steps_per_epoch", "total_steps"} & params:         # per-batch schedules
                per_epoch = len(Exp_Basic._loader(self, "train", train=True))
                extra = {"steps_per_epoch": per_epoch,               # (the target takes what it accepts)
                         "total_steps": self._planned_steps(per_epoch)}
            scheduler = build(sched_cfg, mode=mode, **extra)(optimizer)
            _hold_fixed_lr(optimizer)       # LambdaLR set every group's step-0 lr
        return optimizer, scheduler

    def _planned_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps this run will take: trainer.max_steps, or max_epochs x batches per
        epoch, whichever ends it first."""
        steps = self._max_epochs() * steps_per_epoch      # 10**9 epochs when step-bounded
        ms = self.cfg.trainer.max_steps
        return steps if ms is None else min(steps, int(ms))

    def _parameter_groups(self):
        """Every trainable parameter takes the optimizer's weight decay, unless
        optimizer.weight_decay_1d=false: then biases and normalisation gains (1-D tensors)
        take none, as DINO's and MAE's official code groups them. Parameters the model names
        in ``fixed_lr_parameters()`` (SimSiam's predictor with fix_pred_lr) go in groups
        marked ``fix_lr`` that keep the optimizer's lr whatever the scheduler does."""
        params = self._trainable_parameters()
        hook = getattr(self.model, "fixed_lr_parameters", None)
        fixed_ids = {id(p) for p in hook()} if callable(hook) else set()
        no_decay_1d = not self.cfg.optimizer.get("weight_decay_1d", True)
        if not fixed_ids and not no_decay_1d:
            return params
        groups: dict[tuple[bool, bool], list] = {}
        for p in params:
            groups.setdefault((id(p) in fixed_ids, no_decay_1d and p.ndim <= 1), []).append(p)
        # sorted: scheduled before fixed (TensorBoard logs group 0's lr), decayed before free
        return [{"params": members, **({"weight_decay": 0.0} if free else {}),
                 **({"fix_lr": True} if fixed else {})}
                for (fixed, free), members in sorted(groups.items())]

    def _trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ hooks
    def _process_one_batch(self, batch: dict, train: bool):
        raise NotImplementedError

    def _metrics(self, collected: dict[str, np.ndarray], split: str) -> dict:
        return {}

    def _log_evaluation(self, collected: dict[str, np.ndarray], split: str, metrics: dict) -> None:
        pass

    def _after_optimizer_step(self) -> None:
        hook = getattr(self.model, "on_train_step_end", None)
        if callable(hook):
            hook(self.state["step"])

    # ------------------------------------------------------------------ data
    def has_split(self, split: str) -> bool:
        ds = self.data.splits.get(split)
        return ds is not None and len(ds) > 0

    def _dataset(self, split: str):
        ds = self.data.splits[split]
        if self._keep_on_device(ds):
            if split not in self._device_datasets:
                self._device_datasets[split] = ArrayDataset(
                    **{k: v.to(self.device) for k, v in ds.arrays.items()})
            return self._device_datasets[split]
        return ds

    def _keep_on_device(self, ds) -> bool:
        mode = str(self.cfg.trainer.data_on_device)
        if self.device.type != "cuda" or not isinstance(ds, ArrayDataset) or mode == "false":
            return False
        return mode == "true" or (dataset_nbytes(ds) or 0) <= ON_DEVICE_MAX_BYTES

    def _loader(self, split: str, train: bool, epoch: int = 0):
        t = self.cfg.trainer
        return make_loader(self._dataset(split), batch_size=t.batch_size if train else t.eval_batch_size,
                           train=train, seed=self.cfg.seed, epoch=epoch, drop_last=t.drop_last,
                           num_workers=t.num_workers, device=self.device,
                           max_per_class=t.get("max_per_class") if train else None)

    def _to_device(self, batch: dict) -> dict:
        nb = self.device.type == "cuda"
        return {k: (v.to(self.device, non_blocking=nb) if torch.is_tensor(v) else v)
                for k, v in batch.items()}

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ training
    def _max_epochs(self) -> int:
        t = self.cfg.trainer
        if t.max_epochs is not None:
            return int(t.max_epochs)
        if t.max_steps is None:
            raise ValueError("set trainer.max_epochs or trainer.max_steps")
        return 10**9  # step-bounded

    def _steps_done(self) -> bool:
        ms = self.cfg.trainer.max_steps
        return ms is not None and self.state["step"] >= int(ms)

    def train(self) -> dict:
        t = self.cfg.trainer
        if t.resume:
            self._resume()
        elif (self.ckpt_dir / "last.pt").exists():
            # never overwrite another run's checkpoints
            raise FileExistsError(
                f"{self.ckpt_dir} already holds checkpoints of a run; continue it with "
                "trainer.resume=true, or start a new run in another hydra.run.dir")
        monitor_split = "val" if self.has_split("val") else "train"
        if monitor_split == "train":
            log.info("no validation split: early stopping and best.pt follow the training loss")
        epochs = self._max_epochs()
        bar = tqdm(total=None if epochs >= 10**9 else epochs, initial=self.state["epoch"],
                   desc="epochs", disable=not t.progress, dynamic_ncols=True)
        while self.state["epoch"] < epochs and not self._steps_done():
            epoch = self.state["epoch"]
            t0 = time.perf_counter()
            hook = getattr(self.model, "on_train_epoch_start", None)
            if callable(hook):      # e.g. PatchTST's head-only epochs before fine-tuning all
                hook(epoch)
            train_loss = self._train_epoch(epoch)
            if monitor_split == "val":
                val_metrics = self.vali("val")
            else:
                val_metrics = {"loss": train_loss}
            flat_metrics = flatten_metrics(val_metrics)
            if monitor_split == "val":
                # kept as flat floats (checkpoint-safe): metrics.json shows the last epoch beside the best
                self.state["last_val"] = flat_metrics
            self._scheduler_epoch_step(val_metrics)
            improved = self._update_best(val_metrics)
            self.state["epoch"] = epoch + 1
            # wall time of training + validation, kept in the checkpoint so a resumed run adds up
            self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + time.perf_counter() - t0
            stop = self._should_stop()
            self._write_checkpoints(improved, final=stop or self.state["epoch"] >= epochs
                                    or self._steps_done())
            self.tb.scalar("train/epoch_loss", train_loss, self.state["step"])
            self.tb.scalars({f"{monitor_split}/{k}": v for k, v in flat_metrics.items()}, self.state["step"])
            # without a validation split the monitored metrics are the train loss itself
            monitored = (f" | val {self._summary(val_metrics)}" if monitor_split == "val" else "")
            log.info("epoch %d | train loss %.4f%s | %s %.1fs", epoch + 1, train_loss, monitored,
                     "best" if improved else "    ", time.perf_counter() - t0)
            bar.update(1)
            if stop:
                log.info("early stopping: %s did not improve for %d epochs",
                         self.cfg.task.monitor, self.state["bad_epochs"])
                break
        bar.close()
        self.tb.flush()
        return dict(self.state)

    def _train_epoch(self, epoch: int) -> float:
        t = self.cfg.trainer
        self.model.train()
        loader = self._loader("train", train=True, epoch=epoch)
        total, count = 0.0, 0
        # a step-bounded run shows the steps it will take, not the epoch's batches it will skip
        n_batches = len(loader) if hasattr(loader, "__len__") else None
        if t.max_steps is not None and n_batches is not None:
            n_batches = min(n_batches, max(int(t.max_steps) - self.state["step"], 0))
        bar = tqdm(loader, desc=f"epoch {epoch + 1}", total=n_batches, leave=False,
                   disable=not t.progress, dynamic_ncols=True)
        for batch in bar:
            batch = self._to_device(batch)
            with self._autocast():
                loss, outputs = self._process_one_batch(batch, train=True)
            loss, parts = _split_loss(loss)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss is {loss.item()} at step {self.state['step']}; lower "
                    "optimizer.lr, set trainer.grad_clip, or check the input data for NaN")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if t.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self._trainable_parameters(), float(t.grad_clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None and self._sched_interval() == "step":
                self.scheduler.step()
                _hold_fixed_lr(self.optimizer)
            self.state["step"] += 1
            self._after_optimizer_step()
            value = loss.detach()
            n = _batch_size(batch)
            total += float(value) * n
            count += n
            if self.state["step"] % int(t.log_every_n_steps) == 0:
                self.tb.scalar("train/loss", float(value), self.state["step"])
                self.tb.scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.state["step"])
                for k, v in parts.items():
                    self.tb.scalar(f"train/loss/{k}", float(v), self.state["step"])
                bar.set_postfix(loss=f"{float(value):.4f}")
            if self._steps_done():
                break
        return total / max(count, 1)

    def _sched_interval(self) -> str:
        return str(self.cfg.scheduler.get("interval", "epoch")) if self.cfg.get("scheduler") else "epoch"

    def _scheduler_epoch_step(self, val_metrics: dict) -> None:
        if self.scheduler is None or self._sched_interval() != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(self._monitor_value(val_metrics))
        else:
            self.scheduler.step()
        _hold_fixed_lr(self.optimizer)

    # ------------------------------------------------------------------ early stopping
    def _monitor_key(self, metrics: dict) -> str:
        key = str(self.cfg.task.get("monitor", "loss"))
        return key if key in metrics else "loss"

    def _monitor_value(self, metrics: dict) -> float:
        key = self._monitor_key(metrics)
        if key not in metrics:
            raise KeyError(f"task.monitor={key} is not among the validation metrics "
                           f"{sorted(metrics)}; choose one of them")
        return float(metrics[key])

    def _monitor_mode(self, metrics: dict) -> str:
        return monitor_mode(self._monitor_key(metrics), str(self.cfg.task.get("monitor_mode", "auto")))

    def _update_best(self, metrics: dict) -> bool:
        value = self._monitor_value(metrics)
        best = self.state["best"]
        better = (best is None or (value > best if self._monitor_mode(metrics) == "max" else value < best))
        if math.isnan(value):
            better = False
        if better:
            self.state.update(best=value, best_epoch=self.state["epoch"] + 1, bad_epochs=0)
        else:
            self.state["bad_epochs"] += 1
        return better

    def _should_stop(self) -> bool:
        patience = self.cfg.trainer.patience
        return patience is not None and self.state["bad_epochs"] >= int(patience)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _collect(self, split: str) -> tuple[dict[str, np.ndarray], float]:
        """Run the model over a whole split (no sample dropped); gather outputs on CPU."""
        self.model.eval()
        gathered: dict[str, list] = {}
        total, count = 0.0, 0
        for batch in self._loader(split, train=False):
            batch = self._to_device(batch)
            with self._autocast():
                loss, outputs = self._process_one_batch(batch, train=False)
            n = _batch_size(batch)
            if loss is not None:
                total += float(_split_loss(loss)[0]) * n
                count += n
            for k, v in outputs.items():
                if torch.is_tensor(v):
                    gathered.setdefault(k, []).append(v.detach().float().cpu().numpy()
                                                      if v.is_floating_point() else v.cpu().numpy())
        collected = {k: np.concatenate(v) for k, v in gathered.items()}
        return collected, (total / count if count else float("nan"))

    def vali(self, split: str = "val") -> dict:
        collected, loss = self._collect(split)
        metrics = {"loss": loss, **self._metrics(collected, split)}
        return metrics

    def evaluate(self, split: str, log_figures: bool = True) -> dict:
        collected, loss = self._collect(split)
        metrics = {"loss": loss, **self._metrics(collected, split)}
        if log_figures:
            self._log_evaluation(collected, split, metrics)
        return metrics

    def test(self) -> dict:
        """Evaluate the best checkpoint (selected on validation data) on val and test."""
        self.load_weights("best")
        results = {}
        for split in ("val", "test"):
            if self.has_split(split):
                results[split] = self.evaluate(split)
        self.finish(results)
        return results

    # ------------------------------------------------------------------ results
    def finish(self, results: dict) -> None:
        """Write metrics.json, TensorBoard test scalars and the hparams row."""
        results = {**results, "best_epoch": self.state.get("best_epoch"),
                   "epochs": self.state.get("epoch"), "steps": self.state.get("step"),
                   "train_seconds": self.state.get("train_seconds")}
        if self.state.get("last_val"):
            results["val_last_epoch"] = unflatten_metrics(self.state["last_val"])
        write_text_atomic(json.dumps(_jsonable(results), indent=2), self.run_dir / "metrics.json")
        step = self.state["step"]
        for split in ("val", "test"):
            if isinstance(results.get(split), dict):
                self.tb.scalars({f"final/{split}/{k}": v for k, v in flatten_metrics(results[split]).items()},
                                step)
        if self.cfg.logger.get("log_hparams", True):
            final = {}
            for split in ("val", "test"):
                if isinstance(results.get(split), dict):
                    final.update({f"hparam/{split}/{k}": v for k, v in flatten_metrics(results[split]).items()
                                  if "/" not in k})
            self.tb.hparams(self.cfg, final)
        self.tb.flush()
        reported = "test" if isinstance(results.get("test"), dict) else "val"
        log.info("%s: %s", reported, self._summary(results.get(reported, {}) or {}))

    def _summary(self, metrics: dict) -> str:
        keys = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return " ".join(f"{k} {metrics[k]:.4f}" for k in keys[:6])

    # ------------------------------------------------------------------ checkpoints
    def _write_checkpoints(self, improved: bool, final: bool) -> None:
        """last.pt after every trainer.checkpoint_every-th epoch and after the last one, best.pt
        with it. A best epoch in between is held in memory (a CPU copy) until the next write,
        so tiny epochs of a large model (DINO's 65,536-way head on 100 series) do not spend
        their time on disk; a kill loses at most checkpoint_every - 1 epochs, which a resumed
        run replays to the same result."""
        every = int(self.cfg.trainer.get("checkpoint_every", 1) or 1)
        write = final or self.state["epoch"] % every == 0
        if improved:
            self._pending_best = self._checkpoint() if write else _cpu_copy(self._checkpoint())
        if write:
            self._save("last.pt")
            if self._pending_best is not None:
                save_atomic(self._pending_best, self.ckpt_dir / "best.pt")
                self._pending_best = None

    def _save(self, name: str) -> None:
        save_atomic(self._checkpoint(), self.ckpt_dir / name)

    def _checkpoint(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "state": dict(self.state),
            "rng": get_rng_state(),
            "config": OmegaConf.to_yaml(self.cfg),
        }

    def _resume(self) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"trainer.resume=true but {path} does not exist; resume needs the run directory "
                "of the interrupted run: pass hydra.run.dir=<that run dir>")
        ckpt = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state.update(ckpt["state"])
        set_rng_state(ckpt["rng"])
        log.info("resumed from %s at epoch %d, step %d", path, self.state["epoch"], self.state["step"])

    def load_weights(self, which: str = "best") -> None:
        """Load model weights of best.pt (or last.pt) if this run wrote one."""
        path = self.ckpt_dir / f"{which}.pt"
        if not path.is_file():
            log.warning("%s not found; using the current weights", path)
            return
        self.model.load_state_dict(load_checkpoint(path, map_location=self.device)["model"])


LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "mape", "mspe")


def monitor_mode(key: str, mode: str) -> str:
    """auto: minimise losses and errors, maximise everything else (accuracy, F1, AUROC)."""
    if mode == "auto":
        return "min" if key.split("/")[-1].endswith(LOWER_IS_BETTER) else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"task.monitor_mode={mode} is not valid; use auto, min or max")
    return mode


def _split_loss(loss):
    if isinstance(loss, dict):
        parts = {k: v.detach() for k, v in loss.items() if k != "loss" and torch.is_tensor(v)}
        return loss["loss"], parts
    return loss, {}


def _cpu_copy(obj):
    """A copy of a checkpoint dict whose tensors no longer follow the live model/optimizer."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def _batch_size(batch: dict) -> int:
    x = batch.get("x")
    if x is None:
        x = next(v for v in batch.values() if torch.is_tensor(v))
    return int(x.shape[0])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _hold_fixed_lr(optimizer) -> None:
    """Undo the scheduler on the ``fix_lr`` groups (SimSiam's --fix-pred-lr): back to the
    lr they were built with (kept in the group, so in checkpoints too)."""
    for group in optimizer.param_groups:
        if group.get("fix_lr"):
            group["lr"] = group["fixed_lr"]
