#!/usr/bin/env bash
# Patient-wise cross-validation inside DS1: compare training recipes for MIT-BIH without
# looking at DS2. Each fold holds out 7 whole DS1 records as validation (201 always trains: its
# patient is DS2's 202), so every recipe is scored on patients it never saw, the way DS2 scores
# it, but on training data only. Folds are balanced by hand for V, S and bundle-branch-block
# beats (L: 109, 207; R: 118, 124, 207), so every fold trains on both block morphologies.
# The test split is cut down to record 100 so the runs never evaluate DS2; its numbers are
# not part of the comparison. No early stopping: every run trains the same number of epochs,
# and the table pools the folds (mean ± std over folds) per recipe, best epoch and last epoch.
#   DATA_DIR=/path/to/data bash scripts/ecg/patient_cv.sh trainer.mixup_alpha=0,0.2 [overrides]
# ROOT=<dir> sets the multirun directory (default outputs/multirun/ecg_patient_cv_<time>).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${ROOT:-outputs/multirun/ecg_patient_cv_$(date +%Y-%m-%d_%H-%M-%S)}
folds='[106,118,209,115,122,114,230],[119,109,220,112,101,215,124],[203,207,208,223,116,205,108]'

python main.py -m task=classification model=resnet1d data=ecg "data.val_records=$folds" \
  'data.ds2_records=[100]' trainer.max_epochs=6 trainer.patience=null \
  hydra.sweep.dir="$root" "$@"
python scripts/summarise.py "$root" --pool data.val_records \
  --metrics val.accuracy val.macro_f1 val.per_class.V.sensitivity val.per_class.S.sensitivity \
            val_last_epoch.accuracy val_last_epoch.macro_f1 val_last_epoch.per_class.V.sensitivity \
            val_last_epoch.per_class.S.sensitivity
