"""Promptable segmentation of rhythm episodes (SAM's task on continuous ECG): given a long window
of a record and a prompt (a point inside an episode, or the episode's interval), return the mask
of the episode - the run of one rhythm (atrial fibrillation, ventricular bigeminy, ...) - that
contains it. The segmenter knows no rhythm names: it separates "this episode" from the rest.

A batch is a window of data=ecg_stream with its per-step rhythm ("rhythm" [B, W], -1 = none
noted). Training follows SAM's simulation of interaction: per window one episode (its rhythm
drawn uniformly among those present, so rare rhythms are prompted as often as sinus rhythm),
prompted by one point inside it or by its interval with noisy edges (half the batches each);
then task.train_rounds - 1 rounds add a corrective point drawn from the error region of the
previous prediction. Most windows hold one rhythm throughout, whose mask is the whole window; a
window of one episode is prompted with probability task.single_episode_keep, so the rhythm
changes, the part worth a segmenter, are not drowned by them. A single point is ambiguous, so it gets the model's several candidate masks
(the loss takes the best); several prompts get its single output. The model offers
``encode(x)`` and ``decode(embedding, points, point_labels, interval, multimask)``; training
calls its forward once per round so the same code runs under DistributedDataParallel.

Evaluation prompts every episode of every window (at least task.min_episode_seconds long):
"point" = one point at the episode's centre, the candidate with the highest predicted IoU kept
(SAM's choice); "points_N" = N points, each further one at the centre of the largest error run of
the previous prediction (the standard interactive protocol); "interval" = the exact episode.
Reported for each prompt: the mean IoU over all episodes, over the episodes of windows holding
more than one ("_mixed": where a boundary has to be found; a one-episode window is solved by
the whole-window mask), and per rhythm.
"""
from __future__ import annotations

import numpy as np
import torch

from data_provider.base import DataBundle
from exp.exp_basic import Exp_Basic
from utils.episodes import (episodes, jittered_interval, largest_error_centre, pick_episode,
                            random_error_point)
from utils.losses.sam import mask_iou
from utils.runtime import release_free_memory


class Exp_Segment(Exp_Basic):
    def _get_data(self) -> DataBundle:
        d = self.cfg.data
        if str(d.get("family", "")) != "ecg_stream":
            raise ValueError(f"task=segment prompts the rhythm episodes of continuous recordings: "
                             f"use data=ecg_stream (MIT-BIH records), not data={d.name}")
        bundle = super()._get_data()
        self._min_steps = max(1, int(round(float(self.cfg.task.min_episode_seconds) * bundle.meta["fs"])))
        self._rng = np.random.default_rng(int(self.cfg.seed))
        return bundle

    # ------------------------------------------------------------------ training
    def _to_fraction(self, steps, length: int) -> torch.Tensor:
        return (torch.as_tensor(steps, dtype=torch.float32) + 0.5) / length

    def _process_one_batch(self, batch: dict, train: bool):
        if not train:
            raise RuntimeError("task=segment evaluates through its own prompts (evaluate())")
        x, rhythm = batch["x"], batch["rhythm"].cpu().numpy()
        w, rng = x.shape[1], self._rng
        rows, targets, points, intervals = [], [], [], []
        by_point = rng.random() < 0.5          # the batch's first prompt: a point, or an interval
        keep_single = float(self.cfg.task.single_episode_keep)
        for i in range(len(rhythm)):
            found = episodes(rhythm[i], self._min_steps)
            if not found or (len(found) == 1 and rng.random() >= keep_single):
                continue
            start, end, _ = pick_episode(found, rng)
            rows.append(i)
            target = np.zeros(w, dtype=bool)
            target[start:end] = True
            targets.append(target)
            if by_point:
                points.append([(int(rng.integers(start, end)), 1)])
                intervals.append((np.nan, np.nan))
            else:
                points.append([])
                lo, hi = jittered_interval(start, end, w, rng)
                intervals.append(((lo + 0.5) / w, (hi - 0.5) / w))
        if not rows:                       # no window holds an episode: nothing to learn here
            return sum(p.sum() for p in self.model.parameters()) * 0.0, {}
        idx = torch.as_tensor(rows, device=x.device)
        xs = x[idx]
        target = torch.as_tensor(np.stack(targets), device=x.device)
        valid = torch.as_tensor(rhythm[rows] >= 0, device=x.device)
        interval = torch.as_tensor(intervals, dtype=torch.float32, device=x.device)
        total, parts = 0.0, {}
        for round_ in range(int(self.cfg.task.train_rounds)):
            pts, labels = self._pad(points, w, x.device)
            single_point = by_point and round_ == 0          # ambiguous: several candidates
            out = self.net(xs, pts, labels, None if by_point else interval, multimask=single_point)
            losses = self.criterion(out, {"target_mask": target, "target_valid": valid})
            total = total + losses["loss"]
            parts = {k: v for k, v in losses.items() if k != "loss"}
            if round_ + 1 < int(self.cfg.task.train_rounds):
                best = out["iou"].argmax(1)
                pred = out["masks"][torch.arange(len(rows)), best].detach().cpu().numpy() > 0
                for j in range(len(rows)):
                    click = random_error_point(pred[j], targets[j], rng, rhythm[rows[j]] >= 0)
                    if click is not None:
                        points[j] = points[j] + [click]
        return {"loss": total / int(self.cfg.task.train_rounds), **parts}, {}

    @staticmethod
    def _pad(points: list[list[tuple[int, int]]], length: int, device):
        """Point lists of unequal length -> positions [N, P] (fractions) and labels [N, P]
        (1 inside, 0 outside, -1 padding)."""
        p = max(1, max(len(q) for q in points))
        pos = torch.zeros(len(points), p)
        lab = torch.full((len(points), p), -1, dtype=torch.long)
        for i, q in enumerate(points):
            for j, (step, label) in enumerate(q):
                pos[i, j], lab[i, j] = (step + 0.5) / length, label
        return pos.to(device), lab.to(device)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str, log_figures: bool = True) -> dict:
        self.model.eval()
        n_points = int(self.cfg.task.eval_points)
        names = list(self.meta["rhythm_names"])
        ious = {"point": [], f"points_{n_points}": [], "interval": []}
        kinds, mixed, losses, counts = [], [], [], []
        for batch in self._loader(split, train=False):
            batch = self._to_device(batch)
            x, rhythm = batch["x"], batch["rhythm"].cpu().numpy()
            w = x.shape[1]
            flat = [(i, s, e, k) for i in range(len(rhythm)) for s, e, k in episodes(rhythm[i], self._min_steps)]
            if not flat:
                continue
            with self._autocast():
                emb = self.model.encode(x)
            idx = torch.as_tensor([f[0] for f in flat], device=x.device)
            target = np.zeros((len(flat), w), dtype=bool)
            for j, (_, s, e, _) in enumerate(flat):
                target[j, s:e] = True
            valid = rhythm[[f[0] for f in flat]] >= 0
            t_target, t_valid = torch.as_tensor(target, device=x.device), torch.as_tensor(valid, device=x.device)
            points = [[((s + e - 1) // 2, 1)] for _, s, e, _ in flat]
            out = self._decode(emb[idx], points, None, True, w)
            losses.append(float(self.criterion(out, {"target_mask": t_target, "target_valid": t_valid})["loss"]))
            counts.append(len(flat))
            best = out["masks"][torch.arange(len(flat)), out["iou"].argmax(1)]
            ious["point"].append(mask_iou(best.float(), t_target, t_valid).cpu().numpy())
            pred = best.float().cpu().numpy() > 0
            for _ in range(n_points - 1):               # corrective clicks
                for j in range(len(flat)):
                    click = largest_error_centre(pred[j], target[j], valid[j])
                    points[j] = points[j] + [click if click is not None else points[j][0]]
                out = self._decode(emb[idx], points, None, False, w)
                pred = out["masks"][:, 0].float().cpu().numpy() > 0
            ious[f"points_{n_points}"].append(mask_iou(torch.as_tensor(pred, dtype=torch.float32) * 2 - 1,
                                                        torch.as_tensor(target), torch.as_tensor(valid)).numpy())
            interval = torch.tensor([((s + 0.5) / w, (e - 0.5) / w) for _, s, e, _ in flat],
                                    dtype=torch.float32, device=x.device)
            out = self._decode(emb[idx], [[] for _ in flat], interval, False, w)
            ious["interval"].append(mask_iou(out["masks"][:, 0].float(), t_target, t_valid).cpu().numpy())
            kinds.append(np.array([f[3] for f in flat]))
            per_window = np.bincount([f[0] for f in flat], minlength=len(rhythm))
            mixed.append(per_window[[f[0] for f in flat]] > 1)
        release_free_memory()
        if not kinds:
            return {"loss": float("nan"), "episodes": 0}
        kind = np.concatenate(kinds)
        scores = {k: np.concatenate(v) for k, v in ious.items()}
        in_mixed = np.concatenate(mixed)
        metrics = {"loss": float(np.average(losses, weights=counts)), "episodes": int(len(kind)),
                   "episodes_mixed": int(in_mixed.sum()),
                   **{f"miou_{k}": float(v.mean()) for k, v in scores.items()},
                   **{f"miou_{k}_mixed": float(v[in_mixed].mean()) if in_mixed.any() else float("nan")
                      for k, v in scores.items()}}
        metrics["per_rhythm"] = {names[r]: {"episodes": int((kind == r).sum()),
                                            **{k: float(v[kind == r].mean()) for k, v in scores.items()}}
                                 for r in np.unique(kind).tolist()}
        metrics["macro_miou_point"] = float(np.mean([v["point"] for v in metrics["per_rhythm"].values()]))
        return metrics

    def _decode(self, emb, points, interval, multimask: bool, length: int) -> dict:
        pts, labels = self._pad(points, length, emb.device)
        with self._autocast():
            return self.model.decode(emb, pts, labels, interval, multimask=multimask)
