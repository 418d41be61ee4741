"""Detection on continuous ECG: find every beat of a record (R-peak position and AAMI class)
from the signal alone, scored beat by beat as ANSI/AAMI EC57 does.

A batch is a window of a record (data=ecg_stream): {"x" [B, W, leads], "beat_pos" [B, M],
"beat_cls" [B, M] (-1 = padding), "record", "start", "index"}. A target beat is the interval of
task.box_seconds centred on its R peak. A detector's ``forward(x)`` returns its training
outputs for its own loss (loss(outputs, batch)); its ``detections(outputs)`` gives a fixed number
of candidates per window (score, label, centre, width; suppressed ones score 0).

Evaluation keeps the candidates above a score threshold, merges the overlapping windows of a
record into one annotation stream (each window speaks only for the middle of its overlaps,
utils/detection/windows.py) and compares it with the reference beats with the EC57 match window
(utils/detection/ec57.py, wfdb's matcher). The threshold is chosen on the validation records
(best detection F1 over task.thresholds) unless task.score_threshold fixes it, and the test split
uses the validation choice: nothing is selected on test records. The test split's merged
streams are written to <run dir>/detections.npz (record, sample at the record's own rate, label,
score), the input of scripts/detect/classify_detected.py.
"""
from __future__ import annotations

import numpy as np
from data_provider.base import DataBundle
from exp.exp_basic import Exp_Basic
from utils.atomic import save_npz_atomic
from utils.detection.ec57 import compare_record, summarise
from utils.detection.windows import merge_windows


class Exp_Detect(Exp_Basic):
    def _get_data(self) -> DataBundle:
        d, t = self.cfg.data, self.cfg.task
        if str(d.get("family", "")) != "ecg_stream":
            raise ValueError(f"task=detect finds beats in continuous recordings: use "
                             f"data=ecg_stream (MIT-BIH records), not data={d.name}")
        if not 0 < float(t.box_seconds) < float(d.window_seconds):
            raise ValueError(f"task.box_seconds={t.box_seconds} must be positive and shorter "
                             f"than data.window_seconds={d.window_seconds}")
        bundle = super()._get_data()
        self._threshold = None if t.score_threshold is None else float(t.score_threshold)
        meta = {**bundle.meta, "box_width": float(t.box_seconds) * bundle.meta["fs"] / bundle.meta["window"]}
        return DataBundle(splits=bundle.splits, meta=meta)

    # ------------------------------------------------------------------ one batch
    def _process_one_batch(self, batch: dict, train: bool):
        outputs = self.net(batch["x"])
        loss = self.criterion(outputs, batch)
        if train:
            return loss, {}
        found = self.model.detections(outputs)
        return loss, {**{k: found[k] for k in ("score", "label", "centre")},
                      "record": batch["record"], "start": batch["start"]}

    # ------------------------------------------------------------------ evaluation
    def _streams(self, collected: dict, threshold: float) -> dict[int, tuple]:
        """Per record: the merged (positions at the stream's rate, labels, scores)."""
        window = int(self.meta["window"])
        out = {}
        for r in np.unique(collected["record"]).tolist():
            rows = np.flatnonzero(collected["record"] == r)
            rows = rows[np.argsort(collected["start"][rows], kind="stable")]
            keep = [collected["score"][i] > threshold for i in rows]
            out[r] = merge_windows(collected["start"][rows], window, int(self.meta["record_length"][r]),
                                   [collected["centre"][i][k] * window for i, k in zip(rows, keep)],
                                   [collected["label"][i][k] for i, k in zip(rows, keep)],
                                   [collected["score"][i][k] for i, k in zip(rows, keep)])
        return out

    def _score(self, collected: dict, threshold: float) -> dict:
        t, fs = self.cfg.task, float(self.meta["fs"])
        per_record = {}
        for r, (pos, labels, _) in self._streams(collected, threshold).items():
            ref_samples, ref_cls = self.meta["reference"][r]
            record_fs = float(self.meta["record_fs"][r])
            samples = np.round(pos * record_fs / fs).astype(np.int64)
            per_record[r] = compare_record(ref_samples, ref_cls, samples, labels, record_fs,
                                           match_seconds=float(t.match_seconds),
                                           skip_seconds=float(t.skip_seconds))
        return summarise(per_record, list(self.meta["class_names"]))

    def _metrics(self, collected, split):
        if "score" not in collected:
            return {}
        if split != "val":           # the validation records' choice (test() scores val first)
            threshold = self._threshold if self._threshold is not None else 0.5
            return {**self._score(collected, threshold), "threshold": threshold}
        fixed = self.cfg.task.score_threshold
        grid = [float(fixed)] if fixed is not None else [float(v) for v in self.cfg.task.thresholds]
        scored = [(self._score(collected, th), th) for th in grid]
        best, threshold = max(scored, key=lambda s: (np.nan_to_num(s[0]["f1"], nan=-1.0), -s[1]))
        self._threshold = threshold
        return {**best, "threshold": threshold}

    def _log_evaluation(self, collected, split, metrics):
        if split != "test" or "score" not in collected:
            return
        streams = self._streams(collected, float(metrics["threshold"]))
        records = sorted(streams)
        fs = float(self.meta["fs"])
        samples = [np.round(streams[r][0] * float(self.meta["record_fs"][r]) / fs).astype(np.int64)
                   for r in records]
        save_npz_atomic({"record": np.concatenate([np.full(len(s), r, dtype=np.int64)
                                                   for r, s in zip(records, samples)]),
                         "sample": np.concatenate(samples),
                         "label": np.concatenate([streams[r][1] for r in records]),
                         "score": np.concatenate([streams[r][2] for r in records]),
                         "class_names": np.array(self.meta["class_names"])},
                        self.run_dir / "detections.npz")
        n = int(self.cfg.task.get("plot_windows", 3))
        if n > 0:
            self._figure(collected, streams, split, n)

    def _figure(self, collected: dict, streams: dict, split: str, n: int) -> None:
        """The first lead of n test windows spread over the records, reference vs detected."""
        from utils.detection_figures import detection_figure
        ds, window, fs = self.data.splits[split], int(self.meta["window"]), float(self.meta["fs"])
        picks = np.linspace(0, len(collected["record"]) - 1, n).astype(int)
        stretches = []
        for i in picks:
            r, start = int(collected["record"][i]), int(collected["start"][i])
            pos, labels, _ = streams[r]
            inside = (pos >= start) & (pos < start + window)
            ref_samples, ref_cls = self.meta["reference"][r]
            ref = np.round(ref_samples * fs / float(self.meta["record_fs"][r])).astype(np.int64)
            ref_in = (ref >= start) & (ref < start + window)
            x = ds[int(i)]["x"][:, 0].numpy()
            stretches.append((x, (ref[ref_in] - start, ref_cls[ref_in]),
                              (pos[inside] - start, labels[inside]), f"record {r}, {start / fs:.0f} s"))
        fig = detection_figure(stretches, list(self.meta["class_names"]), f"{split} detections")
        self.tb.figure(f"{split}/detections", fig, self.state["step"])
