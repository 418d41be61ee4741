"""Exp_Basic: the one training loop every task shares (Informer's Exp_Basic layout).

The Informer hooks, which a task subclass overrides where it differs:
    _acquire_device()                      cuda / cpu
    _get_data()                            data_provider -> DataBundle (splits + meta)
    _build_model()                         instantiate cfg.model with the data sizes and budget
    _select_criterion()                    loss(outputs, batch) from cfg.loss
    _select_optimizer()                    optimizer + scheduler (utils/optim.py)
    _process_one_batch(batch, train)       -> (loss Tensor or dict, outputs dict of tensors)
    train() / vali(split) / test()         the loop; validation metrics; the final evaluation
and two for what a task measures: ``_metrics(collected, split)`` and ``_log_evaluation``.

Everything else is a part with one job: the training budget (utils/budget.py, resolved once
before the model is built: ``_resolve_budget``), the loaders (data_provider/loader.py), early
stopping (utils/early_stopping.py), checkpoints and resume (utils/checkpoint.py), results
(utils/results.py), TensorBoard (utils/tb.py). The model's own training hooks
(models/base.py: ``on_train_epoch_start``, ``after_optimizer_step``,
``fixed_lr_parameters``) are called directly; a model fitted in closed form
(``fits_in_closed_form``) gets the training split once through ``fit_closed_form`` instead of
the loop, and no optimizer.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from data_provider.base import DataBundle
from data_provider.data_factory import data_provider
from data_provider.loader import SplitLoaders
from models.base import hooks_of
from utils import distributed
from utils.budget import TrainingBudget, resolve_budget
from utils.checkpoint import Checkpointer, load_checkpoint, strip_wrappers
from utils.device import acquire_device, amp_dtype
from utils.early_stopping import EarlyStopping, monitor_mode
from utils.instantiate import build
from utils.metrics import flatten_metrics, summary_line, unflatten_metrics
from utils.optim import ScheduleStepper, build_optimizer, build_scheduler
from utils.results import write_results
from utils.row_buffer import RowBuffer
from utils.runtime import apply_runtime_settings, release_free_memory
from utils.seed import get_rng_state
from utils.tb import TensorBoardLogger
from utils.train_step import LossMeter, batch_size_of, split_loss

log = logging.getLogger(__name__)


class Exp_Basic:
    def __init__(self, cfg: DictConfig, run_dir: str | Path):
        self.cfg = cfg
        apply_runtime_settings(cfg)   # threads, subnormal flush: every entry point builds an Exp
        self.run_dir = Path(run_dir)
        self.device = self._acquire_device()
        self.amp_dtype = amp_dtype(str(cfg.trainer.precision), self.device)
        self.data: DataBundle = self._get_data()
        self.meta = self.data.meta
        t = cfg.trainer
        self.loaders = SplitLoaders(self.data.splits, t, int(t.batch_size), int(cfg.seed), self.device,
                                    world=distributed.world_size(), rank=distributed.rank())
        self.budget: TrainingBudget = self._resolve_budget()
        self.loaders.batch_size = self.budget.batch_size
        self.model = self._build_model().to(self.device)
        if distributed.active() and t.get("sync_batchnorm", False):
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.hooks = hooks_of(self.model)
        self.net = self._forward_module(distributed.active())
        self.criterion = self._select_criterion()
        if isinstance(self.criterion, nn.Module):
            self.criterion = self.criterion.to(self.device)
        self.optimizer, self.scheduler = self._select_optimizer()
        self.schedule = ScheduleStepper(self.scheduler, self.optimizer, cfg.get("scheduler"))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.tb = TensorBoardLogger(self.run_dir, enabled=distributed.is_main())   # rank 0 writes
        self.state = {"epoch": 0, "step": 0}
        self.stopper = EarlyStopping(str(cfg.task.get("monitor", "loss")),
                                     str(cfg.task.get("monitor_mode", "auto")), t.patience)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", t.get("checkpoint_every", 1))
        self.ckpt_dir = self.checkpointer.dir

    # ------------------------------------------------------------------ setup
    def _acquire_device(self) -> torch.device:
        return acquire_device(str(self.cfg.trainer.device),
                              distributed.local_rank() if distributed.active() else None)

    def _forward_module(self, distributed_training: bool) -> nn.Module:
        """What batches go through: the model in DistributedDataParallel while several
        processes train, compiled when trainer.compile=true. Hooks, encode and checkpoints
        use self.model itself."""
        net = (distributed.wrap(self.model, self.device,
                                bool(self.cfg.trainer.get("find_unused_parameters", True)))
               if distributed_training else self.model)
        return torch.compile(net) if self.cfg.trainer.get("compile", False) else net

    def end_distributed_training(self) -> None:
        """After training: rank 0 evaluates alone, through the model itself."""
        if distributed.active():
            self.net = self._forward_module(False)

    def _get_data(self) -> DataBundle:
        return data_provider(self.cfg)

    def _resolve_budget(self) -> TrainingBudget:
        return resolve_budget(self.cfg.trainer, len(self.data.splits["train"]), self._steps_per_epoch)

    def _steps_per_epoch(self, batch_size: int) -> int:
        return len(self.loaders.plain("train", train=True, batch_size=batch_size))

    def _model_dims(self) -> dict:
        """What a model constructor may take besides its config: the data-dependent sizes
        and the run's length in optimizer steps (``total_steps``)."""
        dims = {k: v for k, v in self.meta.items() if isinstance(v, (int, float, str, list, tuple, dict))}
        return {**dims, "total_steps": self.budget.total_steps}

    def _build_model(self) -> nn.Module:
        return build(self.cfg.model, **self._model_dims())

    def _select_criterion(self):
        return build(self.cfg.loss, **self._model_dims())

    def _select_optimizer(self):
        if self.hooks.fits_in_closed_form:
            return None, None
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.cfg.optimizer, params, self.hooks.fixed_lr_parameters(),
                                    global_batch=int(self.cfg.trainer.batch_size) * distributed.world_size())
        # ReduceLROnPlateau follows the monitored validation metric in its direction
        mode = monitor_mode(str(self.cfg.task.get("monitor", "loss")),
                            str(self.cfg.task.get("monitor_mode", "auto")))
        return optimizer, build_scheduler(self.cfg.get("scheduler"), optimizer, self.budget, mode)

    # ------------------------------------------------------------------ task hooks
    def _process_one_batch(self, batch: dict, train: bool):
        raise NotImplementedError

    def _metrics(self, collected: dict[str, np.ndarray], split: str) -> dict:
        return {}

    def _log_evaluation(self, collected: dict[str, np.ndarray], split: str, metrics: dict) -> None:
        pass

    # ------------------------------------------------------------------ data
    def has_split(self, split: str) -> bool:
        return self.loaders.has(split)

    def _loader(self, split: str, train: bool, epoch: int = 0):
        return self.loaders(split, train, epoch)

    def _to_device(self, batch: dict) -> dict:
        nb = self.device.type == "cuda"
        return {k: (v.to(self.device, non_blocking=nb) if torch.is_tensor(v) else v)
                for k, v in batch.items()}

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ training
    def train(self) -> dict:
        if self.hooks.fits_in_closed_form:
            return self._fit_closed_form()
        if self.cfg.trainer.resume:
            self._resume()
        else:
            self.checkpointer.refuse_overwrite()
        monitor_split = "val" if self.has_split("val") else "train"
        if monitor_split == "train":
            log.info("no validation split: early stopping and best.pt follow the training loss")
        bar = tqdm(total=self.budget.max_epochs, initial=self.state["epoch"], desc="epochs",
                   disable=not self.cfg.trainer.progress, dynamic_ncols=True)
        while not self.budget.finished(self.state["epoch"], self.state["step"]):
            stop = self._run_epoch(monitor_split)
            bar.update(1)
            if stop:
                log.info("early stopping: %s did not improve for %d epochs",
                         self.cfg.task.monitor, self.stopper.bad_epochs)
                break
        bar.close()
        self.tb.flush()
        return {**self.state, **self.stopper.state_dict()}

    def _fit_closed_form(self) -> dict:
        """Fit the model on the whole training split at once; a resumed run fits again (the
        fit is deterministic and takes no longer than loading its inputs)."""
        if distributed.active():
            raise ValueError(f"model={self.cfg.model.name} is fitted in closed form in one process; "
                             "run it without torchrun")
        if not self.cfg.trainer.resume:
            self.checkpointer.refuse_overwrite()
        t0 = time.perf_counter()
        self.model.fit_closed_form(self._split_arrays("train"))
        self.state.update(epoch=1, train_seconds=time.perf_counter() - t0)
        self._write_checkpoints(improved=True, final=True)
        log.info("fitted in closed form on %d training samples in %.1fs",
                 len(self.data.splits["train"]), self.state["train_seconds"])
        self.tb.flush()
        return {**self.state, **self.stopper.state_dict()}

    def _split_arrays(self, split: str) -> dict[str, np.ndarray]:
        """A whole split as numpy arrays by batch key, in order (through its loader, so every
        dataset kind reads the same way)."""
        parts: dict[str, list] = {}
        for batch in self.loaders.plain(split, train=False):
            for k, v in batch.items():
                if torch.is_tensor(v):
                    parts.setdefault(k, []).append(v.cpu().numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}

    def _run_epoch(self, monitor_split: str) -> bool:
        """One training epoch, its validation, scheduler step, model selection and
        checkpoints; True when early stopping ends the run."""
        epoch, t0 = self.state["epoch"], time.perf_counter()
        self.hooks.on_train_epoch_start(epoch)       # e.g. PatchTST's head-only epochs
        train_loss = self._train_epoch(epoch)
        # the training steps alone, what reference implementations report as their epoch time
        self.state["train_loop_seconds"] = (self.state.get("train_loop_seconds", 0.0)
                                            + time.perf_counter() - t0)
        release_free_memory()
        # without a validation split the monitored metrics are the train loss itself; every
        # rank decides on rank 0's numbers
        val_metrics = self.vali("val") if monitor_split == "val" else {"loss": train_loss}
        val_metrics = distributed.broadcast_object(val_metrics)
        flat_metrics = flatten_metrics(val_metrics)
        if monitor_split == "val":
            # kept as flat floats (checkpoint-safe): metrics.json shows the last epoch beside the best
            self.state["last_val"] = flat_metrics
        self.schedule.after_epoch(lambda: self.stopper.value(val_metrics))
        improved = self.stopper.update(val_metrics, epoch + 1)
        self.state["epoch"] = epoch + 1
        # wall time of training + validation, kept in the checkpoint so a resumed run adds up
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + time.perf_counter() - t0
        stop = self.stopper.should_stop()
        self._write_checkpoints(improved, final=stop or self.budget.finished(epoch + 1, self.state["step"]))
        self.tb.scalar("train/epoch_loss", train_loss, self.state["step"])
        self.tb.scalars({f"{monitor_split}/{k}": v for k, v in flat_metrics.items()}, self.state["step"])
        monitored = f" | val {self._summary(val_metrics)}" if monitor_split == "val" else ""
        log.info("epoch %d | train loss %.4f%s | %s %.1fs", epoch + 1, train_loss, monitored,
                 "best" if improved else "    ", time.perf_counter() - t0)
        return stop

    def _train_epoch(self, epoch: int) -> float:
        self.model.train()
        loader = self._loader("train", train=True, epoch=epoch)
        meter = LossMeter()
        # a step-bounded run shows the steps it will take, not the epoch's batches it will skip
        n_batches = len(loader) if hasattr(loader, "__len__") else None
        left = self.budget.steps_left(self.state["step"])
        if left is not None and n_batches is not None:
            n_batches = min(n_batches, left)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}", total=n_batches, leave=False,
                   disable=not self.cfg.trainer.progress, dynamic_ncols=True)
        for batch in bar:
            loss, parts, n = self._train_step(batch)
            meter.add(loss, n, self.state["step"])
            if self.state["step"] % int(self.cfg.trainer.log_every_n_steps) == 0:
                meter.check()                 # the loss is read here anyway
                self.tb.train_step(self.state["step"], loss, self.optimizer.param_groups[0]["lr"], parts)
                bar.set_postfix(loss=f"{float(loss):.4f}")
            if self.budget.steps_left(self.state["step"]) == 0:
                break
        meter.check()
        return meter.mean()

    def _train_step(self, batch: dict) -> tuple[torch.Tensor, dict, int]:
        """Forward, backward and optimizer step on one batch: (loss, loss parts, batch size)."""
        t = self.cfg.trainer
        batch = self._to_device(batch)
        with self._autocast():
            loss, _ = self._process_one_batch(batch, train=True)
        loss, parts = split_loss(loss)
        if loss.device.type == "cpu" and not torch.isfinite(loss):   # free on the CPU: stop at once
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.state['step']}; lower "
                "optimizer.lr, set trainer.grad_clip, or check the input data for NaN")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if t.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.model.parameters() if p.requires_grad]
            nn.utils.clip_grad_norm_(params, float(t.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.after_batch()
        self.state["step"] += 1
        self._after_optimizer_step()
        return loss.detach(), parts, batch_size_of(batch)

    def _after_optimizer_step(self) -> None:
        self.hooks.after_optimizer_step(self.state["step"])

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _collect(self, split: str) -> tuple[dict[str, np.ndarray], float]:
        """Run the model over a whole split (no sample dropped); the outputs as host arrays."""
        self.model.eval()
        # one tensor per output, on the device, copied to the host once at the end
        gathered = RowBuffer(len(self.loaders.splits[split]))
        total, count = None, 0                     # summed on the device, read once
        for batch in self._loader(split, train=False):
            batch = self._to_device(batch)
            with self._autocast():
                loss, outputs = self._process_one_batch(batch, train=False)
            n = batch_size_of(batch)
            if loss is not None:
                value = split_loss(loss)[0].detach().double() * n
                total = value if total is None else total + value
                count += n
            gathered.add(outputs, n)
        collected = gathered.arrays()
        del gathered
        release_free_memory()
        return collected, (float(total) / count if count else float("nan"))

    def vali(self, split: str = "val") -> dict:
        return self.evaluate(split, log_figures=False)

    def evaluate(self, split: str, log_figures: bool = True) -> dict:
        collected, loss = self._collect(split)
        metrics = {"loss": loss, **self._metrics(collected, split)}
        if log_figures:
            self._log_evaluation(collected, split, metrics)
        return metrics

    def test(self) -> dict:
        """Evaluate the best checkpoint (selected on validation data) on val and test."""
        self.load_weights("best")
        results = {split: self.evaluate(split) for split in ("val", "test") if self.has_split(split)}
        return self.finish(results)

    # ------------------------------------------------------------------ results
    def finish(self, results: dict) -> dict:
        """Write metrics.json, TensorBoard test scalars and the hparams row; returns what
        metrics.json holds."""
        results = {**results, "best_epoch": self.stopper.best_epoch,
                   "epochs": self.state.get("epoch"), "steps": self.state.get("step"),
                   "train_seconds": self.state.get("train_seconds"),
                   "train_loop_seconds": self.state.get("train_loop_seconds")}
        if self.state.get("last_val"):
            results["val_last_epoch"] = unflatten_metrics(self.state["last_val"])
        write_results(results, self.run_dir, self.tb, self.budget.applied_to(self.cfg), self.state["step"],
                      self.cfg.logger.get("log_hparams", True))
        reported = "test" if isinstance(results.get("test"), dict) else "val"
        log.info("%s: %s", reported, self._summary(results.get(reported, {}) or {}))
        return results

    def _summary(self, metrics: dict) -> str:
        return summary_line(metrics)

    # ------------------------------------------------------------------ checkpoints
    def _write_checkpoints(self, improved: bool, final: bool) -> None:
        rng = distributed.gather_objects(get_rng_state())       # every rank's, for the resume
        if distributed.is_main():
            self.checkpointer.write(lambda: self._checkpoint(rng), self.state["epoch"], improved, final)

    def _checkpoint(self, rng: list | None = None) -> dict:
        return self.checkpointer.snapshot(self.model, self.optimizer, self.scheduler, self.scaler,
                                          {**self.state, **self.stopper.state_dict()},
                                          OmegaConf.to_yaml(self.budget.applied_to(self.cfg)),
                                          rng or [get_rng_state()])

    def _resume(self) -> None:
        state = self.checkpointer.resume(self.model, self.optimizer, self.scheduler, self.scaler,
                                         distributed.rank(), distributed.world_size())
        self.stopper.load_state_dict(state)
        stopper_keys = self.stopper.state_dict()
        self.state.update({k: v for k, v in state.items() if k not in stopper_keys})
        log.info("resumed from %s at epoch %d, step %d", self.checkpointer.last,
                 self.state["epoch"], self.state["step"])

    def load_weights(self, which: str = "best") -> None:
        """Load model weights of best.pt (or last.pt) if this run wrote one."""
        path = self.checkpointer.path(which)
        if not path.is_file():
            log.warning("%s not found; using the current weights", path)
            return
        self.model.load_state_dict(strip_wrappers(load_checkpoint(path, map_location=self.device)["model"]))
