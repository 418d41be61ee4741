#!/usr/bin/env python
"""How much of MIT-BIH's S and V classes the RR intervals alone find, inside DS1 only.

A class-weighted logistic regression on the beats' RR features, each of the three record groups
of scripts/ecg/patient_cv.sh held out in turn (trained on the other two); prints Se / +P per
AAMI class pooled over the held-out groups, for each `data.rr_normalize` choice (none: the six
features in seconds and ratios; record / causal: the logarithms of pre-, post- and local RR over
the patient's average RR). DS2 is never read.

    DATA_DIR=<data> python scripts/ecg/rr_only_cv.py [hydra overrides, e.g. paths.cache_dir=...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_provider import mitdb  # noqa: E402
from data_provider.mitdb_signal import CLASS_NAMES, RR_NORMALIZATIONS, normalize_rr  # noqa: E402
from utils.compose import compose_cfg  # noqa: E402

GROUPS = [[106, 118, 209, 115, 122, 114, 230], [119, 109, 220, 112, 101, 215, 124],
          [203, 207, 208, 223, 116, 205, 108]]


def main() -> None:
    cfg = compose_cfg(["data=ecg", "data.val_records=[]", "data.rr_standardize=false", *sys.argv[1:]])
    train = mitdb.build(cfg).splits["train"].arrays         # all of DS1
    rr, y, record = train["features"].numpy(), train["y"].numpy(), train["record"].numpy()
    k = len(CLASS_NAMES)
    for mode in RR_NORMALIZATIONS:
        x = rr if mode == "none" else np.log(normalize_rr(rr, record, mode))
        cm = np.zeros((k, k), dtype=np.int64)
        for held_out in GROUPS:
            test = np.isin(record, held_out)
            mu, sd = x[~test].mean(0), x[~test].std(0)
            clf = LogisticRegression(class_weight="balanced", max_iter=2000)
            clf.fit((x[~test] - mu) / sd, y[~test])
            cm += confusion_matrix(y[test], clf.predict((x[test] - mu) / sd), labels=range(k))
        se = np.diag(cm) / np.maximum(cm.sum(1), 1)
        ppv = np.diag(cm) / np.maximum(cm.sum(0), 1)
        print(f"rr_normalize={mode:<7}", "  ".join(f"{c} {s:.3f} / {p:.3f}"
                                                 for c, s, p in zip(CLASS_NAMES, se, ppv)))


if __name__ == "__main__":
    main()
