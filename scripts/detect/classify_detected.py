#!/usr/bin/env python
"""A trained MIT-BIH beat classifier (a task=classification run on data=ecg) fed with detected
beats instead of the reference annotations, scored as task=detect scores a detector (ANSI/AAMI
EC57: beats matched within 150 ms, class statistics of the matched beats, missed beats count
against their class's sensitivity and extra detections against their predicted class's positive
predictivity).

Each test record's beats are cut around the detected R peaks with the run's own preprocessing
(data_provider/mitdb_signal.py), their RR features computed from the detected beats and
standardised with the run's training statistics, and classified by the run's best checkpoint
(under its decision rule; a fitted rule's offsets are refitted on its validation beats). The
detections come from wfdb's XQRS (`--detections xqrs`) or from a task=detect run's
detections.npz; `--detections annotations` feeds the reference beats themselves, the row to
compare with (the classifier's own test figures).

    DATA_DIR=<data> python scripts/detect/classify_detected.py \
        --classifier <run dir>/checkpoints/best.pt --detections annotations xqrs <detect run>/detections.npz \
        [--out figures.json] [hydra overrides, e.g. task.skip_seconds=0]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_provider import mitdb  # noqa: E402
from data_provider.mitdb_signal import (AAMI_INDEX, CLASS_NAMES, beats_at, normalize_rr,  # noqa: E402
                                        preprocess_signal, read_record, rr_features)
from exp.exp_classification import Exp_Classification  # noqa: E402
from exp.exp_explain import trained_config  # noqa: E402
from utils.checkpoint import load_checkpoint, strip_wrappers  # noqa: E402
from utils.compose import compose_cfg, split_overrides  # noqa: E402
from utils.decision_rule import fit_class_offsets  # noqa: E402
from utils.detection.ec57 import compare_record, summarise  # noqa: E402
from utils.instantiate import refuse_untrusted_targets  # noqa: E402
from utils.paths import inside_data_dir  # noqa: E402
from utils.refusal import refuse_on_error  # noqa: E402


def classifier_config(ckpt: Path, here) -> "OmegaConf":
    trained = trained_config(ckpt)
    refuse_untrusted_targets(trained, str(ckpt))         # a file's config is data
    if str(trained.task.name) != "classification" or str(trained.data.family) != "ecg":
        raise SystemExit(f"{ckpt} is not a task=classification run on data=ecg (it is task="
                         f"{trained.task.name}, data={trained.data.name}); train one with "
                         "`python main.py task=classification data=ecg model=resnet1d`")
    if bool(trained.data.get("dechazal_features", False)):
        raise SystemExit(f"{ckpt} reads de Chazal's delineated features, which need the reference "
                         "annotations' fiducial points; give a classifier trained on the RR features")
    with open_dict(trained):
        trained.paths = here.paths
        trained.trainer.device, trained.trainer.progress = "cpu", False
    return trained


class DetectedBeatClassifier:
    """The run's model, preprocessing and feature standardisation, applied to any R peaks."""

    def __init__(self, ckpt: Path, cfg):
        self.cfg, d = cfg, cfg.data
        self.settings = mitdb.settings_from_cfg(d)
        self.exp = Exp_Classification(cfg, tempfile.mkdtemp(prefix="classify_detected."))
        self.exp.model.load_state_dict(strip_wrappers(load_checkpoint(ckpt)["model"]))
        self.exp.model.eval()
        self.offsets = None
        if str(cfg.task.get("decision_rule", "argmax")) == "fitted":
            collected, _ = self.exp._collect("val")
            self.offsets = fit_class_offsets(collected["logits"], collected["y"],
                                             int(cfg.task.get("decision_min_support", 10)))
        self.rr = bool(d.get("rr_features", True))
        self.stats = None
        if self.rr and bool(d.get("rr_standardize", True)):
            raw = OmegaConf.merge(cfg, {"data": {"rr_standardize": False}})
            self.stats = mitdb._rr_standardiser(mitdb.build(raw).splits["train"])

    def features(self, peaks: np.ndarray, fs: float, record: int) -> np.ndarray | None:
        if not self.rr:
            return None
        d = self.cfg.data
        f = normalize_rr(rr_features(peaks, fs), np.full(len(peaks), record),
                         str(d.get("rr_normalize", "none")), float(d.get("rr_causal_seconds", 300.0)))
        if self.stats is not None:
            lo, hi, mu, sd = self.stats
            f = (np.clip(f.astype(np.float64), lo, hi) - mu) / sd
        return f.astype(np.float32)

    @torch.no_grad()
    def classify(self, sig: np.ndarray, fs_out: float, peaks: np.ndarray, fs: float, record: int):
        x = torch.from_numpy(beats_at(sig, fs_out, peaks, fs, self.settings))[:, :, None]
        f = self.features(peaks, fs, record)
        labels = []
        for lo in range(0, len(x), 1024):
            batch = {"x": x[lo:lo + 1024]}
            if f is not None:
                batch["features"] = torch.from_numpy(f[lo:lo + 1024])
            logits = self.exp._forward(batch, batch["x"]).float().numpy()
            labels.append((logits + (0.0 if self.offsets is None else self.offsets)).argmax(1))
        return np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


def detected_peaks(source: str, record: int, raw: np.ndarray, fs: float, ref: np.ndarray,
                   loaded: dict) -> np.ndarray:
    if source == "annotations":
        return ref
    if source == "xqrs":
        from wfdb import processing
        return np.asarray(processing.xqrs_detect(raw, fs, verbose=False), dtype=np.int64)
    found = loaded[source]
    if record not in set(found["record"].tolist()):
        raise SystemExit(f"{source} holds no detections of record {record}; give the detections "
                         "of a task=detect run over the same test records")
    return np.sort(found["sample"][found["record"] == record]).astype(np.int64)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", type=Path, required=True, help="<run dir>/checkpoints/best.pt")
    ap.add_argument("--detections", nargs="+", default=["annotations", "xqrs"],
                    help="annotations | xqrs | a task=detect run's detections.npz (several allowed)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    argv = sys.argv[1:] if argv is None else argv
    options, overrides = split_overrides(argv)
    args = ap.parse_args(options)
    here = compose_cfg(["model=detr", *overrides])
    cfg = classifier_config(args.classifier, here)
    loaded = {}
    for source in args.detections:
        if source not in ("annotations", "xqrs"):
            with np.load(source, allow_pickle=False) as z:
                loaded[source] = {k: z[k] for k in ("record", "sample")}
    clf = DetectedBeatClassifier(args.classifier, cfg)
    folder = inside_data_dir(str(cfg.paths.data_dir), ("data.subdir", cfg.data.subdir))
    per_source = {s: {} for s in args.detections}
    for r in mitdb.split_records(cfg.data)["test"]:
        raw, fs, samples, symbols = read_record(folder / str(r), clf.settings.lead)
        is_beat = np.array([s in AAMI_INDEX for s in symbols], dtype=bool)
        ref, ref_cls = samples[is_beat], np.array([AAMI_INDEX[s] for s in symbols[is_beat]])
        sig, fs_out = preprocess_signal(raw, fs, clf.settings)
        for source in args.detections:
            peaks = detected_peaks(source, r, raw, fs, ref, loaded)
            labels = clf.classify(sig, fs_out, peaks, fs, r)
            per_source[source][r] = compare_record(ref, ref_cls, peaks, labels, fs,
                                                   match_seconds=float(here.task.match_seconds),
                                                   skip_seconds=float(here.task.skip_seconds))
    results = {}
    for source, per_record in per_source.items():
        s = summarise(per_record, list(CLASS_NAMES))
        results[source] = s
        classes = "  ".join(f"{c} {s['classes'][c]['se']:.3f}/{s['classes'][c]['ppv']:.3f}"
                            for c in CLASS_NAMES[:4])
        print(f"{Path(source).parent.name or source}: beats Se {s['se']:.4f} +P {s['ppv']:.4f} | "
              f"Se/+P {classes} | macro-F1 {s['macro_f1']:.3f}")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    with refuse_on_error():
        main()
