"""COMET: hierarchical contrastive learning for medical time series (Wang et al.,
NeurIPS 2023, "Contrast Everything").

One encoder (the TS2Vec dilated CNN, as the official code: hidden 64, depth 10, output
320) is contrasted at four levels, each with its own pair of views:

    patient      same patient, different samples are positives     views: no masking (dropout)
    trial        same trial, different samples are positives       views: no masking (dropout)
    sample       the two views of one sample are positives         views: continuous masking
    observation  the two views of one time step are positives      views: continuous masking

The losses are in utils.losses.comet.COMETLoss. Batch keys: ``patient_id`` (on MIT-BIH the
record, with 201 and 202 one patient) and ``trial_id``. When the data family gives no
trial_id, a trial is ``trial_windows`` consecutive windows of one patient, derived from the
batch's ``index`` (the sample's row in the pretraining set). A level whose ids the data lacks
(UCR/UEA sets know neither patients nor trials) is left out, as the official code does for
a level with factor 0 and as its README suggests ("removing data levels"): no views are
encoded for it, its term and weight drop out of the loss (the other weights are not
rescaled), and a warning names it once. Without patient ids, row order says nothing about
trials, so the trial level needs ``trial_id`` then. COMET pretrains best when a batch
holds several samples of the same trials and patients (the official trial-shuffling
sampler); with plain random batches of a large split, trial-level positives are rare, so
``group_trials`` (default) asks task=pretrain for batches of whole trials
(``batch_groups``: the trial id of every pretraining sample; trials are shuffled as units).

``encode`` uses the running average of the encoder weights (stochastic weight averaging,
updated after every optimizer step as the official code) and max-pools over time.
"""
from __future__ import annotations

import copy
import logging

import torch

from layers.dilated_conv import TSEncoder
from layers.encoders import pool
from models.ssl.base import RepresentationModel

log = logging.getLogger(__name__)

LEVEL_MASKS = {"patient": "all_true", "trial": "all_true", "sample": "continuous",
               "observation": "continuous"}
MISSING_HOW = {
    "patient": "To train it, pretrain on a data family whose samples carry 'patient_id' "
               "(data=ecg: the MIT-BIH record) in every split of task.pretrain_splits; "
               "to silence this, drop 'patient' from model.levels.",
    "trial": "To train it, give the samples a 'trial_id', or a 'patient_id' (with the row "
             "'index', trials are then model.trial_windows consecutive windows of a patient), "
             "in every split of task.pretrain_splits; to silence this, drop 'trial' from "
             "model.levels.",
}


class COMET(RepresentationModel):
    def __init__(self, in_channels: int, output_dims: int = 320, hidden_dims: int = 64,
                 depth: int = 10, levels=("patient", "trial", "sample", "observation"),
                 trial_windows: int = 10, group_trials: bool = True):
        super().__init__()
        unknown = set(levels) - set(LEVEL_MASKS)
        if unknown:
            raise ValueError(f"unknown COMET level(s) {sorted(unknown)}; choose from {list(LEVEL_MASKS)}")
        self.levels = tuple(levels)
        self.trial_windows = trial_windows
        self.group_trials = group_trials
        self.encoder = TSEncoder(in_channels, output_dims, hidden_dims, depth)
        self.avg_encoder = copy.deepcopy(self.encoder)   # SWA copy used by encode()
        for p in self.avg_encoder.parameters():
            p.requires_grad_(False)
        self._warned = set()   # levels already reported as lacking ids
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))
        self.repr_dim = output_dims

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> None:
        n = int(self.n_averaged)
        for avg, cur in zip(self.avg_encoder.parameters(), self.encoder.parameters()):
            avg.copy_(cur if n == 0 else avg + (cur - avg) / (n + 1))
        self.n_averaged += 1

    def _ids(self, batch: dict) -> dict:
        """The patient/trial ids of the batch that the data provides (or that can be derived);
        a level whose ids are missing gets none."""
        ids = {}
        if "patient" in self.levels and "patient_id" in batch:
            ids["patient_id"] = batch["patient_id"]
        if "trial" in self.levels:
            if "trial_id" in batch:
                ids["trial_id"] = batch["trial_id"]
            elif "index" in batch and "patient_id" in batch:
                # consecutive windows of one patient form a trial
                ids["trial_id"] = batch["patient_id"].long() * 10**9 + batch["index"].long() // self.trial_windows
        return ids

    def active_levels(self, ids: dict) -> tuple:
        """The levels a batch with these ``_ids`` can train: ``self.levels`` less the
        patient/trial level whose ids are missing (each named once in a warning)."""
        missing = [lv for lv in ("patient", "trial") if lv in self.levels and f"{lv}_id" not in ids]
        for level in missing:
            if level not in self._warned:
                self._warned.add(level)
                log.warning("COMET: the batches carry no %s ids, so the %s level is left out of "
                            "the loss (its weight dropped; the other levels still train). %s",
                            level, level, MISSING_HOW[level])
        active = tuple(lv for lv in self.levels if lv not in missing)
        if not active:
            raise ValueError(f"COMET: none of model.levels={list(self.levels)} can be trained on "
                             "this data (no patient/trial ids); add 'sample' and/or 'observation'")
        return active

    def batch_groups(self, arrays: dict):
        """Trial id of every pretraining sample (Exp_Pretrain keeps trials whole in a batch,
        the official trial shuffling); None when not grouping or no trial is known."""
        if not self.group_trials or "trial" not in self.levels:
            return None
        return self._ids(arrays).get("trial_id")

    def forward(self, batch: dict) -> dict:
        x = batch["x"]
        ids = self._ids(batch)
        out = {}
        for level in self.active_levels(ids):
            out[f"{level}_z1"] = self.encoder(x, mask=LEVEL_MASKS[level])
            out[f"{level}_z2"] = self.encoder(x, mask=LEVEL_MASKS[level])
        if "patient_id" in ids:
            out["patient_id"] = ids["patient_id"]
        if "trial_id" in ids:
            out["trial_id"] = ids["trial_id"]
        return out

    def embed(self, x: torch.Tensor, pooling: str | None = "max", mask=None) -> torch.Tensor:
        """Representations without augmentation, from the averaged weights once training
        has started (dropout follows the module's train/eval mode)."""
        net = self.avg_encoder if int(self.n_averaged) > 0 else self.encoder
        return pool(net(x, mask=mask if mask is not None else "all_true"), pooling)
